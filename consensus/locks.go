package consensus

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/messages"
)

// Lease locks are replicated beside the key-value store, in their own name
// space. A lock is granted by a committed LOCK_OP_ACQUIRE entry; its
// fencing token is that entry's log index, so tokens grow with every
// grant, of any lock. Expiry is not in the state machine (which has no
// clock): every replica counts each lease down on its own clock from when
// it applied the grant or the latest refresh, and the leader proposes a
// LOCK_OP_EXPIRE for a lease whose count reached zero. An expiry names the
// lease's token and version (the index of its grant or latest refresh), so
// one that crosses a refresh in the log changes nothing.

// The limits of lease locks.
const (
	// MinLockTTL and MaxLockTTL bound a lease's TTL. The floor leaves room
	// for a few raft ticks and a commit; the ceiling bounds how long a
	// crashed holder blocks others.
	MinLockTTL = 100 * time.Millisecond
	MaxLockTTL = 10 * time.Minute
	// MaxLockNameSize and MaxLockOwnerSize bound a lock's name and its
	// owner's description, in bytes.
	MaxLockNameSize  = 128
	MaxLockOwnerSize = 256
)

// Errors of lease locks. ErrLockHeld, ErrUnknownLock and ErrWrongToken come
// from the replicated state (the operation was applied and refused);
// ErrInvalidLockName and ErrInvalidTTL refuse the request before it is
// proposed.
var (
	// ErrLockHeld: another holder has the lock; see the LockHeldError.
	ErrLockHeld = errors.New("consensus: lock held")
	// ErrUnknownLock: nobody holds the lock (never acquired, released, or
	// its lease expired).
	ErrUnknownLock = errors.New("consensus: unknown lock")
	// ErrWrongToken: the token is not the holder's (an earlier holder's,
	// or made up).
	ErrWrongToken = errors.New("consensus: wrong token")
	// ErrInvalidLockName: a name that is empty, too long or holds other
	// characters than letters, digits, '.', '_', '-' and '/'.
	ErrInvalidLockName = errors.New("consensus: invalid lock name")
	// ErrInvalidTTL: a lease TTL outside [MinLockTTL, MaxLockTTL].
	ErrInvalidTTL = errors.New("consensus: lease TTL out of range")
)

// LockHeldError is ErrLockHeld with who holds the lock.
type LockHeldError struct {
	Name  string
	Owner string // as the holder described itself ("" if it did not)
	// ExpiresIn is when the lease ends unless refreshed, as the answering
	// node counts it down; the leader, which decides, counts from its own
	// apply and may end it a little later.
	ExpiresIn time.Duration
}

func (e *LockHeldError) Error() string {
	who := e.Owner
	if who == "" {
		who = "an owner that gave no name"
	}
	return fmt.Sprintf("consensus: lock %q is held by %s; its lease ends in about %v unless refreshed", e.Name, who, e.ExpiresIn.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrLockHeld) hold.
func (e *LockHeldError) Is(target error) bool { return target == ErrLockHeld }

// LockOp is the operation of a [LockRequest].
type LockOp int

// The operations on lease locks.
const (
	LockAcquire LockOp = iota + 1 // take a free lock for TTL; the result's Token fences the holder
	LockRelease                   // free the lock held with Token
	LockRefresh                   // restart the lease of the holder with Token, for TTL
)

func (o LockOp) String() string {
	switch o {
	case LockAcquire:
		return "acquire"
	case LockRelease:
		return "release"
	case LockRefresh:
		return "refresh"
	}
	return "unknown"
}

// LockRequest asks a node's raft protocol for one operation on a lease
// lock: a request (actors.Call, actors.Request) to [Name] on the
// same node, answered with a [LockResult]; any node serves it (raft
// forwards the proposal to the leader). It fails with ErrLockHeld (a
// *LockHeldError), ErrUnknownLock or ErrWrongToken when the state refused
// it; ErrInvalidLockName, ErrInvalidTTL, ErrBadRequest or an error that
// wraps ErrNotApplied when it was not applied; ErrTimeout or ErrStopped
// when it may have been.
type LockRequest struct {
	actors.Returns[LockResult]
	Op    LockOp
	Name  string        // letters, digits, '.', '_', '-', '/'; 1 to MaxLockNameSize bytes
	Owner string        // LockAcquire: who asks, shown to others while it holds (optional)
	TTL   time.Duration // LockAcquire, LockRefresh: in [MinLockTTL, MaxLockTTL]
	Token uint64        // LockRelease, LockRefresh: the holder's token
}

// LockResult is the outcome of a LockRequest that did not fail.
type LockResult struct {
	// Token is the holder's fencing token (LockAcquire: the new one). It
	// is the log index of the grant: every grant of every lock gets a
	// greater one.
	Token uint64
	// Index is the log index the operation was applied at.
	Index uint64
}

// lease is one held lock in the replicated state.
type lease struct {
	owner   string
	token   uint64 // index of the grant
	ttl     time.Duration
	version uint64 // index of the grant or the latest refresh
}

// leaseTimer counts one lease down on this node's clock.
type leaseTimer struct {
	version  uint64
	deadline time.Time
	proposed time.Time // when this node (as leader) proposed its expiry
}

// checkLockName refuses names that are empty, too long, or hold other
// characters than letters, digits, '.', '_', '-' and '/'.
func checkLockName(name string) error {
	const valid = "1 to %d bytes of letters, digits, '.', '_', '-' and '/'"
	switch {
	case name == "":
		return fmt.Errorf("%w: empty; a lock name is "+valid, ErrInvalidLockName, MaxLockNameSize)
	case len(name) > MaxLockNameSize:
		return fmt.Errorf("%w: %d bytes; a lock name is "+valid, ErrInvalidLockName, len(name), MaxLockNameSize)
	}
	for i, r := range name {
		if !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '_' || r == '-' || r == '/')) {
			return fmt.Errorf("%w: %q has %q at byte %d; a lock name is "+valid, ErrInvalidLockName, name, r, i, MaxLockNameSize)
		}
	}
	return nil
}

func checkTTL(ttl time.Duration) error {
	if ttl < MinLockTTL || ttl > MaxLockTTL {
		return fmt.Errorf("%w: %v; a lease lasts from %v to %v", ErrInvalidTTL, ttl, MinLockTTL, MaxLockTTL)
	}
	return nil
}

func checkOwner(owner string) error {
	if len(owner) > MaxLockOwnerSize || !utf8.ValidString(owner) || slices.ContainsFunc([]rune(owner), unicode.IsControl) {
		return fmt.Errorf("%w: owner must be at most %d bytes of UTF-8 without control characters", ErrBadRequest, MaxLockOwnerSize)
	}
	return nil
}

// check validates a request before it is proposed.
func (r LockRequest) check() error {
	if err := checkLockName(r.Name); err != nil {
		return err
	}
	switch r.Op {
	case LockAcquire:
		if err := checkOwner(r.Owner); err != nil {
			return err
		}
		return checkTTL(r.TTL)
	case LockRefresh:
		if r.Token == 0 {
			return fmt.Errorf("%w: refresh of lock %q without a token", ErrBadRequest, r.Name)
		}
		return checkTTL(r.TTL)
	case LockRelease:
		if r.Token == 0 {
			return fmt.Errorf("%w: release of lock %q without a token", ErrBadRequest, r.Name)
		}
		return nil
	}
	return fmt.Errorf("%w: lock operation %d; valid: LockAcquire, LockRelease, LockRefresh", ErrBadRequest, r.Op)
}

// onLock proposes a lock operation; the outcome comes from apply, through
// reply (an error returned here answers it).
func (p *Raft) onLock(ctx *actors.Context, req LockRequest, reply actors.Reply[LockResult]) error {
	if err := req.check(); err != nil {
		return err
	}
	cmd := &messages.LockCommand{Name: req.Name, Owner: req.Owner, TtlMs: req.TTL.Milliseconds(), Token: req.Token}
	switch req.Op {
	case LockAcquire:
		cmd.Op = messages.LockOp_LOCK_OP_ACQUIRE
	case LockRelease:
		cmd.Op = messages.LockOp_LOCK_OP_RELEASE
	case LockRefresh:
		cmd.Op = messages.LockOp_LOCK_OP_REFRESH
	}
	if err := p.unavailable(); err != nil {
		return err
	}
	p.accept(ctx, &pendingWrite{cmd: &messages.KVCommand{Lock: cmd}, lock: reply})
	return nil
}

// proposeExpiry proposes, on the leader, the expiry of a lease; nobody
// waits for its outcome (expireLeases asks again if it does not apply).
func (p *Raft) proposeExpiry(lc *messages.LockCommand) bool {
	st := p.rn.BasicStatus()
	if st.Lead != p.id {
		return false
	}
	p.seq++
	data, err := proto.Marshal(&messages.KVCommand{Lock: lc, Origin: p.id, Epoch: p.epoch, Seq: p.seq, Term: st.GetTerm()})
	if err != nil || p.rn.Propose(data) != nil {
		return false
	}
	p.proposals++
	return true
}

// applyEntry applies one committed command: a lock operation or a
// key-value write.
func (p *Raft) applyEntry(cmd *messages.KVCommand, index uint64) (Result, error) {
	if cmd.Lock == nil {
		return p.sm.apply(cmd)
	}
	c := cmd.Lock
	ls := p.sm.leases
	l := ls[c.Name]
	switch c.Op {
	case messages.LockOp_LOCK_OP_ACQUIRE:
		if l != nil {
			return Result{}, &LockHeldError{Name: c.Name, Owner: l.owner, ExpiresIn: p.expiresIn(c.Name)}
		}
		l = &lease{owner: c.Owner, token: index, ttl: time.Duration(c.TtlMs) * time.Millisecond, version: index}
		ls[c.Name] = l
		p.startLease(c.Name, l)
		return Result{OK: true, token: index}, nil
	case messages.LockOp_LOCK_OP_RELEASE, messages.LockOp_LOCK_OP_REFRESH:
		if l == nil {
			return Result{}, fmt.Errorf("%w: nobody holds lock %q (never acquired, released, or its lease expired)", ErrUnknownLock, c.Name)
		}
		if l.token != c.Token {
			return Result{}, fmt.Errorf("%w: token %d does not hold lock %q (a later grant does)", ErrWrongToken, c.Token, c.Name)
		}
		if c.Op == messages.LockOp_LOCK_OP_RELEASE {
			delete(ls, c.Name)
			delete(p.leaseTimers, c.Name)
			return Result{OK: true, token: l.token}, nil
		}
		l.ttl, l.version = time.Duration(c.TtlMs)*time.Millisecond, index
		p.startLease(c.Name, l)
		return Result{OK: true, token: l.token}, nil
	case messages.LockOp_LOCK_OP_EXPIRE:
		if l != nil && l.token == c.Token && l.version == c.Version {
			delete(ls, c.Name)
			delete(p.leaseTimers, c.Name)
			p.log.Info().Str("lock", c.Name).Str("owner", l.owner).Uint64("token", l.token).Msg("lease expired")
		}
		return Result{OK: true}, nil
	}
	// An operation this version does not know: a no-op on every node alike.
	return Result{}, fmt.Errorf("%w: unknown lock operation %v in the log", ErrBadRequest, c.Op)
}

// startLease starts (or restarts) the countdown of a lease on this node.
func (p *Raft) startLease(name string, l *lease) {
	if p.leaseTimers == nil {
		p.leaseTimers = map[string]*leaseTimer{}
	}
	p.leaseTimers[name] = &leaseTimer{version: l.version, deadline: p.clock().Add(l.ttl)}
}

func (p *Raft) expiresIn(name string) time.Duration {
	if t := p.leaseTimers[name]; t != nil {
		return max(t.deadline.Sub(p.clock()), 0)
	}
	return 0
}

// expireLeases runs on every tick: it starts the countdown of leases that
// came with a snapshot, and on the leader proposes the expiry of every
// lease whose countdown ended (again after a few election timeouts if the
// expiry did not commit).
func (p *Raft) expireLeases(ctx *actors.Context) {
	if len(p.sm.leases) == 0 && len(p.leaseTimers) == 0 {
		return
	}
	for name, l := range p.sm.leases {
		if t := p.leaseTimers[name]; t == nil || t.version != l.version {
			p.startLease(name, l) // restored from a snapshot: count from now
		}
	}
	for name := range p.leaseTimers {
		if p.sm.leases[name] == nil {
			delete(p.leaseTimers, name)
		}
	}
	if p.lead != p.id {
		return
	}
	now := ctx.Now()
	retry := 3 * time.Duration(p.cfg.ElectionTicks) * p.cfg.TickInterval
	for _, name := range slices.Sorted(maps.Keys(p.leaseTimers)) {
		t := p.leaseTimers[name]
		if now.Before(t.deadline) || (!t.proposed.IsZero() && now.Sub(t.proposed) < retry) {
			continue
		}
		l := p.sm.leases[name]
		if p.proposeExpiry(&messages.LockCommand{Op: messages.LockOp_LOCK_OP_EXPIRE, Name: name, Token: l.token, Version: l.version}) {
			t.proposed = now
		}
	}
}

// encodeLeases lists the held locks for a snapshot, by name.
func encodeLeases(ls map[string]*lease) []*messages.LockLease {
	out := make([]*messages.LockLease, 0, len(ls))
	for _, name := range slices.Sorted(maps.Keys(ls)) {
		l := ls[name]
		out = append(out, &messages.LockLease{Name: name, Owner: l.owner, Token: l.token, TtlMs: l.ttl.Milliseconds(), Version: l.version})
	}
	return out
}

func decodeLeases(in []*messages.LockLease) map[string]*lease {
	out := make(map[string]*lease, len(in))
	for _, l := range in {
		out[l.Name] = &lease{owner: l.Owner, token: l.Token, ttl: time.Duration(l.TtlMs) * time.Millisecond, version: l.Version}
	}
	return out
}

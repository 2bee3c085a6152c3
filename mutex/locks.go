package mutex

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/messages"
)

// Lease locks are a state machine on the raft group of package consensus
// (LockMachine), hosted beside the key-value store under the name "locks".
// A lock is granted by a committed LOCK_OP_ACQUIRE command; its fencing
// token is its entry's log index, so tokens grow with every grant, of any
// lock. Expiry is not in the state (which has no clock): every replica
// counts each lease down on its own clock from when it applied the grant or
// the latest refresh (consensus.Ticker), and the leader proposes a
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
// proposed. The raft group's are consensus's (ErrNotApplied, ErrTimeout,
// ...).
var (
	// ErrLockHeld: another holder has the lock; see the LockHeldError.
	ErrLockHeld = errors.New("mutex: lock held")
	// ErrUnknownLock: nobody holds the lock (never acquired, released, or
	// its lease expired).
	ErrUnknownLock = errors.New("mutex: unknown lock")
	// ErrWrongToken: the token is not the holder's (an earlier holder's,
	// or made up).
	ErrWrongToken = errors.New("mutex: wrong token")
	// ErrInvalidLockName: a name that is empty, too long or holds other
	// characters than letters, digits, '.', '_', '-' and '/'.
	ErrInvalidLockName = errors.New("mutex: invalid lock name")
	// ErrInvalidTTL: a lease TTL outside [MinLockTTL, MaxLockTTL].
	ErrInvalidTTL = errors.New("mutex: lease TTL out of range")
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
	return fmt.Sprintf("mutex: lock %q is held by %s; its lease ends in about %v unless refreshed", e.Name, who, e.ExpiresIn.Round(time.Millisecond))
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
// it; ErrInvalidLockName, ErrInvalidTTL, consensus.ErrBadRequest or an error that
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
		return fmt.Errorf("%w: owner must be at most %d bytes of UTF-8 without control characters", consensus.ErrBadRequest, MaxLockOwnerSize)
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
			return fmt.Errorf("%w: refresh of lock %q without a token", consensus.ErrBadRequest, r.Name)
		}
		return checkTTL(r.TTL)
	case LockRelease:
		if r.Token == 0 {
			return fmt.Errorf("%w: release of lock %q without a token", consensus.ErrBadRequest, r.Name)
		}
		return nil
	}
	return fmt.Errorf("%w: lock operation %d; valid: LockAcquire, LockRelease, LockRefresh", consensus.ErrBadRequest, r.Op)
}

// LockMachineName is the name lease locks are hosted under
// ([LockMachine]).
const LockMachineName = "locks"

// LockMachine is the lease lock state machine, to host on the raft
// protocol (consensus.Config.Machines) of every node of the group;
// [Leases] and [HTTPHandler] are its client and HTTP API.
func LockMachine() consensus.Machine {
	return consensus.Machine{Name: LockMachineName, New: func(env consensus.Env) consensus.StateMachine {
		return &locks{env: env, leases: map[string]*lease{}, timers: map[string]*leaseTimer{}}
	}}
}

// locks is the replicated state of the lease locks, and each held lock's
// countdown on this node's clock (not replicated).
type locks struct {
	env    consensus.Env
	leases map[string]*lease
	timers map[string]*leaseTimer
}

var _ consensus.Ticker = (*locks)(nil)

// Register serves LockRequest (a command) and LocksRequest (the local
// replica's held locks).
func (s *locks) Register(r *consensus.Router) {
	consensus.HandleCommand(r, encodeLock)
	consensus.HandleLocal(r, s.list)
}

// encodeLock checks a request and encodes its command.
func encodeLock(req LockRequest) ([]byte, error) {
	if err := req.check(); err != nil {
		return nil, err
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
	return proto.Marshal(cmd)
}

// Apply applies one lock operation and returns its LockResult.
func (s *locks) Apply(cmd consensus.Command) (any, error) {
	c := &messages.LockCommand{}
	if err := proto.Unmarshal(cmd.Data, c); err != nil {
		return nil, fmt.Errorf("%w: a lock command at index %d does not decode: %v", consensus.ErrBadRequest, cmd.Index, err)
	}
	index := cmd.Index
	l := s.leases[c.Name]
	switch c.Op {
	case messages.LockOp_LOCK_OP_ACQUIRE:
		if l != nil {
			return nil, &LockHeldError{Name: c.Name, Owner: l.owner, ExpiresIn: s.expiresIn(c.Name)}
		}
		l = &lease{owner: c.Owner, token: index, ttl: time.Duration(c.TtlMs) * time.Millisecond, version: index}
		s.leases[c.Name] = l
		s.startLease(c.Name, l)
		return LockResult{Token: index, Index: index}, nil
	case messages.LockOp_LOCK_OP_RELEASE, messages.LockOp_LOCK_OP_REFRESH:
		if l == nil {
			return nil, fmt.Errorf("%w: nobody holds lock %q (never acquired, released, or its lease expired)", ErrUnknownLock, c.Name)
		}
		if l.token != c.Token {
			return nil, fmt.Errorf("%w: token %d does not hold lock %q (a later grant does)", ErrWrongToken, c.Token, c.Name)
		}
		if c.Op == messages.LockOp_LOCK_OP_RELEASE {
			delete(s.leases, c.Name)
			delete(s.timers, c.Name)
			return LockResult{Token: l.token, Index: index}, nil
		}
		l.ttl, l.version = time.Duration(c.TtlMs)*time.Millisecond, index
		s.startLease(c.Name, l)
		return LockResult{Token: l.token, Index: index}, nil
	case messages.LockOp_LOCK_OP_EXPIRE:
		if l != nil && l.token == c.Token && l.version == c.Version {
			delete(s.leases, c.Name)
			delete(s.timers, c.Name)
			s.env.Log.Info().Str("lock", c.Name).Str("owner", l.owner).Uint64("token", l.token).Msg("lease expired")
		}
		return LockResult{Index: index}, nil
	}
	// An operation this version does not know: a no-op on every node alike.
	return nil, fmt.Errorf("%w: unknown lock operation %v in the log", consensus.ErrBadRequest, c.Op)
}

// startLease starts (or restarts) the countdown of a lease on this node.
func (s *locks) startLease(name string, l *lease) {
	s.timers[name] = &leaseTimer{version: l.version, deadline: s.env.Now().Add(l.ttl)}
}

func (s *locks) expiresIn(name string) time.Duration {
	if t := s.timers[name]; t != nil {
		return max(t.deadline.Sub(s.env.Now()), 0)
	}
	return 0
}

// Tick starts the countdown of leases that came with a snapshot, and on
// the leader proposes the expiry of every lease whose countdown ended
// (again after three election timeouts if the expiry did not commit).
func (s *locks) Tick(now time.Time, leader bool, p consensus.Proposer) {
	if len(s.leases) == 0 && len(s.timers) == 0 {
		return
	}
	for name, l := range s.leases {
		if t := s.timers[name]; t == nil || t.version != l.version {
			s.startLease(name, l) // restored from a snapshot: count from now
		}
	}
	for name := range s.timers {
		if s.leases[name] == nil {
			delete(s.timers, name)
		}
	}
	if !leader {
		return
	}
	retry := 3 * s.env.ElectionTimeout
	for _, name := range slices.Sorted(maps.Keys(s.timers)) {
		t := s.timers[name]
		if now.Before(t.deadline) || (!t.proposed.IsZero() && now.Sub(t.proposed) < retry) {
			continue
		}
		l := s.leases[name]
		data, err := proto.Marshal(&messages.LockCommand{Op: messages.LockOp_LOCK_OP_EXPIRE, Name: name, Token: l.token, Version: l.version})
		if err == nil && p.Propose(data) {
			t.proposed = now
		}
	}
}

// Snapshot encodes the held locks, by name.
func (s *locks) Snapshot() ([]byte, error) {
	out := &messages.LockSnapshot{Leases: make([]*messages.LockLease, 0, len(s.leases))}
	for _, name := range slices.Sorted(maps.Keys(s.leases)) {
		l := s.leases[name]
		out.Leases = append(out.Leases, &messages.LockLease{Name: name, Owner: l.owner, Token: l.token, TtlMs: l.ttl.Milliseconds(), Version: l.version})
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(out)
}

// Restore replaces the held locks with a snapshot's (nil: none); their
// countdowns start at the next Tick.
func (s *locks) Restore(data []byte) error {
	var snap messages.LockSnapshot
	if err := proto.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("mutex: lock snapshot does not decode: %v", err)
	}
	s.leases = make(map[string]*lease, len(snap.Leases))
	for _, l := range snap.Leases {
		s.leases[l.Name] = &lease{owner: l.Owner, token: l.Token, ttl: time.Duration(l.TtlMs) * time.Millisecond, version: l.Version}
	}
	return nil
}

// LocksRequest asks the raft protocol for the held locks of this node's
// replica whose name starts with Prefix, in name order, at most Limit
// (1 to MaxLocksLimit; 0 means 100): a read-only look for operators (the
// dashboard), not linearizable. A request (actors.Call to consensus.Name).
type LocksRequest struct {
	actors.Returns[[]LockInfo]
	Prefix string
	Limit  int
}

// LockInfo is one held lock, as LocksRequest lists it.
type LockInfo struct {
	Name  string `json:"name"`
	Owner string `json:"owner"`
	// Token is the holder's fencing token (the log index of its grant),
	// as a decimal string: exact in JavaScript beyond 2^53.
	Token     uint64        `json:"token,string"`
	TTL       time.Duration `json:"ttl_ns"`
	ExpiresIn time.Duration `json:"expires_in_ns"` // on this node's clock; 0 if its countdown has not started here
}

// MaxLocksLimit bounds LocksRequest.Limit.
const MaxLocksLimit = 1000

func (s *locks) list(r LocksRequest, _ uint64) ([]LockInfo, error) {
	if r.Limit == 0 {
		r.Limit = 100
	}
	if r.Limit < 1 || r.Limit > MaxLocksLimit || len(r.Prefix) > MaxLockNameSize*8 {
		return nil, fmt.Errorf("%w: limit %d (use 1 to %d) or a prefix of %d bytes (at most %d)", consensus.ErrBadRequest, r.Limit, MaxLocksLimit, len(r.Prefix), MaxLockNameSize*8)
	}
	out := []LockInfo{}
	for name, l := range s.leases {
		if strings.HasPrefix(name, r.Prefix) {
			out = append(out, LockInfo{Name: name, Owner: l.owner, Token: l.token, TTL: l.ttl, ExpiresIn: s.expiresIn(name)})
		}
	}
	slices.SortFunc(out, func(a, b LockInfo) int { return strings.Compare(a.Name, b.Name) })
	if len(out) > r.Limit {
		out = out[:r.Limit]
	}
	return out, nil
}

package mutex

import (
	"context"
	"fmt"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
)

// Leases is a blocking client of the lease lock service that a node's
// raft protocol (package consensus) replicates ([LockMachine]): locks with a TTL and a
// fencing token that grows with every grant. Any node of the raft group
// serves it. Every method waits for the outcome or for ctx; when ctx ends
// first the error wraps consensus.ErrTimeout (the operation may still be
// applied). A Leases is safe for concurrent use.
type Leases struct {
	c *consensus.Client
}

// NewLeases returns a client of node's raft protocol, which must be
// running.
func NewLeases(node *actors.Node) (*Leases, error) {
	c, err := consensus.NewClient(node)
	if err != nil {
		return nil, fmt.Errorf("mutex: the lease lock service needs the raft protocol: %w", err)
	}
	return &Leases{c: c}, nil
}

// Node is the node the client talks to.
func (l *Leases) Node() *actors.Node { return l.c.Node() }

// Lock performs one operation on a lease lock and waits for its outcome.
func (l *Leases) Lock(ctx context.Context, req LockRequest) (LockResult, error) {
	return consensus.Call(ctx, l.c.Node(), req, func() string { return fmt.Sprintf("%s of lock %q", req.Op, req.Name) })
}

// Locks lists the held locks of the node's replica whose name starts with
// prefix (a [LocksRequest]; not linearizable).
func (l *Leases) Locks(ctx context.Context, prefix string, limit int) ([]LockInfo, error) {
	return consensus.Call(ctx, l.c.Node(), LocksRequest{Prefix: prefix, Limit: limit}, func() string { return fmt.Sprintf("list of locks %q", prefix) })
}

// Lease is a held lock.
type Lease struct {
	Name string
	// Token fences the holder: pass it with every write to a store that
	// checks it; a store that has seen a greater token refuses the write.
	Token uint64
	TTL   time.Duration
	// Deadline is on the caller's clock: when Acquire (or Refresh) was
	// called, plus TTL. Until then the holder may count on the lock (less
	// the drift between its clock and the leader's); every replica counts
	// the lease from when it applied it, which is later. After the
	// deadline only the fencing token protects the protected store.
	Deadline time.Time
}

// Acquire takes the lock `name` for ttl, if it is free. owner describes
// the holder to others (optional). A held lock fails with an error that
// wraps ErrLockHeld (a *LockHeldError naming the
// holder); a name or TTL out of range with ErrInvalidLockName or
// ErrInvalidTTL.
func (l *Leases) Acquire(ctx context.Context, name string, ttl time.Duration, owner string) (Lease, error) {
	start := time.Now()
	r, err := l.Lock(ctx, LockRequest{Op: LockAcquire, Name: name, TTL: ttl, Owner: owner})
	if err != nil {
		return Lease{}, err
	}
	return Lease{Name: name, Token: r.Token, TTL: ttl, Deadline: start.Add(ttl)}, nil
}

// Refresh restarts the lease for ttl (0 keeps its TTL). It fails with
// ErrUnknownLock when the lease has expired, and ErrWrongToken
// when another holder has the lock since.
func (l *Leases) Refresh(ctx context.Context, lease Lease, ttl time.Duration) (Lease, error) {
	if ttl == 0 {
		ttl = lease.TTL
	}
	start := time.Now()
	if _, err := l.Lock(ctx, LockRequest{Op: LockRefresh, Name: lease.Name, Token: lease.Token, TTL: ttl}); err != nil {
		return lease, err
	}
	lease.TTL, lease.Deadline = ttl, start.Add(ttl)
	return lease, nil
}

// Release frees the lock held with token. It fails with
// ErrUnknownLock when nobody holds it (its lease expired, or it
// was never taken) and ErrWrongToken when token is not the holder's.
func (l *Leases) Release(ctx context.Context, name string, token uint64) error {
	_, err := l.Lock(ctx, LockRequest{Op: LockRelease, Name: name, Token: token})
	return err
}

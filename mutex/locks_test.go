package mutex_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/mutex"
	"github.com/troupe-dev/troupe/transport/sim"
)

// The lease lock state machine (LockMachine) on a raft group.

// group is a raft group hosting the lease locks and the key-value store.
type group struct {
	*consensustest.Group
	t testing.TB
	c interface {
		Crash(actors.NodeName) error
		Restart(actors.NodeName) (*actors.Node, error)
		Names() []actors.NodeName
		Node(actors.NodeName) *actors.Node
	}
}

func newGroup(t testing.TB, n int, seed uint64, _ sim.Faults, tweak func(*consensus.Config)) *group {
	g := newLockGroup(t, n, seed, tweak)
	return &group{Group: g, t: t, c: g.Cluster}
}

func (g *group) leader(d time.Duration) actors.NodeName { g.t.Helper(); return g.Leader(d) }

func (g *group) status(name actors.NodeName) (consensus.Status, error) { return g.Status(name) }

func (g *group) kv(name actors.NodeName) *kv.Client {
	c, err := kv.NewClient(g.Node(name))
	if err != nil {
		g.t.Fatal(err)
	}
	return c
}

// lockOutcome is a lock request's reply or error.
type lockOutcome struct {
	mutex.LockResult
	Err error
}

// lock sends one lock request through node `name` and waits for it.
func (g *group) lock(name actors.NodeName, req mutex.LockRequest) lockOutcome {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := mutex.NewLeases(g.Node(name))
	if err != nil {
		g.t.Fatal(err)
	}
	r, err := l.Lock(ctx, req)
	if ctx.Err() != nil {
		g.t.Fatalf("%s of lock %q on %s: no outcome: %v", req.Op, req.Name, name, err)
	}
	return lockOutcome{r, err}
}

func TestLockStateMachine(t *testing.T) { actortest.Virtual(t, testLockStateMachine) }

func testLockStateMachine(t *testing.T) {
	g := newGroup(t, 3, 11, sim.Faults{}, nil)
	g.leader(5 * time.Second)
	acquire := func(node actors.NodeName, name, owner string) lockOutcome {
		return g.lock(node, mutex.LockRequest{Op: mutex.LockAcquire, Name: name, Owner: owner, TTL: 10 * time.Second})
	}
	a := acquire("node-1", "a", "alice")
	if a.Err != nil || a.Token == 0 || a.Token != a.Index {
		t.Fatalf("acquire of a free lock: %+v; want a token equal to the grant's index", a)
	}
	held := acquire("node-2", "a", "bob")
	var he *mutex.LockHeldError
	if !errors.As(held.Err, &he) || !errors.Is(held.Err, mutex.ErrLockHeld) || he.Owner != "alice" || he.ExpiresIn <= 0 || he.ExpiresIn > 10*time.Second {
		t.Fatalf("acquire of a held lock: %v; want ErrLockHeld naming alice with the time left", held.Err)
	}
	if !strings.Contains(held.Err.Error(), "alice") {
		t.Errorf("the message %q does not name the holder", held.Err)
	}
	if r := g.lock("node-3", mutex.LockRequest{Op: mutex.LockRelease, Name: "a", Token: a.Token + 1}); !errors.Is(r.Err, mutex.ErrWrongToken) {
		t.Errorf("release with a wrong token: %v; want ErrWrongToken", r.Err)
	}
	if r := g.lock("node-3", mutex.LockRequest{Op: mutex.LockRefresh, Name: "a", Token: a.Token, TTL: 20 * time.Second}); r.Err != nil || r.Token != a.Token {
		t.Errorf("refresh by the holder: %+v", r)
	}
	if r := g.lock("node-3", mutex.LockRequest{Op: mutex.LockRelease, Name: "a", Token: a.Token}); r.Err != nil {
		t.Errorf("release by the holder: %v", r.Err)
	}
	if r := g.lock("node-1", mutex.LockRequest{Op: mutex.LockRelease, Name: "a", Token: a.Token}); !errors.Is(r.Err, mutex.ErrUnknownLock) {
		t.Errorf("release of a free lock: %v; want ErrUnknownLock", r.Err)
	}
	if r := g.lock("node-1", mutex.LockRequest{Op: mutex.LockRefresh, Name: "never", Token: 3, TTL: time.Second}); !errors.Is(r.Err, mutex.ErrUnknownLock) {
		t.Errorf("refresh of a lock nobody holds: %v; want ErrUnknownLock", r.Err)
	}

	// Tokens grow with every grant, of every lock, through every node.
	last := a.Token
	for i := range 12 {
		node, name := actors.NodeName(fmt.Sprintf("node-%d", i%3+1)), fmt.Sprintf("l%d", i%4)
		r := acquire(node, name, "")
		if r.Err != nil {
			t.Fatalf("acquire %s: %v", name, r.Err)
		}
		if r.Token <= last {
			t.Fatalf("grant %d has token %d, not above the previous %d", i, r.Token, last)
		}
		last = r.Token
		if rel := g.lock(node, mutex.LockRequest{Op: mutex.LockRelease, Name: name, Token: r.Token}); rel.Err != nil {
			t.Fatal(rel.Err)
		}
	}
}

func TestLockBadInput(t *testing.T) { actortest.Virtual(t, testLockBadInput) }

func testLockBadInput(t *testing.T) {
	g := newGroup(t, 1, 12, sim.Faults{}, nil)
	g.leader(5 * time.Second)
	long := strings.Repeat("n", mutex.MaxLockNameSize+1)
	for _, c := range []struct {
		req  mutex.LockRequest
		want error
		part string
	}{
		{mutex.LockRequest{Op: mutex.LockAcquire, Name: "", TTL: time.Second}, mutex.ErrInvalidLockName, "empty"},
		{mutex.LockRequest{Op: mutex.LockAcquire, Name: long, TTL: time.Second}, mutex.ErrInvalidLockName, "129 bytes"},
		{mutex.LockRequest{Op: mutex.LockAcquire, Name: "a b", TTL: time.Second}, mutex.ErrInvalidLockName, `' '`},
		{mutex.LockRequest{Op: mutex.LockAcquire, Name: "é", TTL: time.Second}, mutex.ErrInvalidLockName, "letters, digits"},
		{mutex.LockRequest{Op: mutex.LockAcquire, Name: "a", TTL: time.Millisecond}, mutex.ErrInvalidTTL, "100ms to 10m0s"},
		{mutex.LockRequest{Op: mutex.LockAcquire, Name: "a", TTL: time.Hour}, mutex.ErrInvalidTTL, "1h0m0s"},
		{mutex.LockRequest{Op: mutex.LockAcquire, Name: "a", TTL: time.Second, Owner: "x\ny"}, consensus.ErrBadRequest, "owner"},
		{mutex.LockRequest{Op: mutex.LockRefresh, Name: "a", TTL: time.Second}, consensus.ErrBadRequest, "without a token"},
		{mutex.LockRequest{Op: mutex.LockRefresh, Name: "a", Token: 4}, mutex.ErrInvalidTTL, "0s"},
		{mutex.LockRequest{Op: mutex.LockRelease, Name: "a"}, consensus.ErrBadRequest, "without a token"},
		{mutex.LockRequest{Op: 9, Name: "a"}, consensus.ErrBadRequest, "LockAcquire"},
	} {
		r := g.lock("node-1", c.req)
		if !errors.Is(r.Err, c.want) || !strings.Contains(r.Err.Error(), c.part) {
			t.Errorf("%+v: %v; want %v mentioning %q", c.req, r.Err, c.want, c.part)
		}
	}
	// None of them was applied.
	if r := g.lock("node-1", mutex.LockRequest{Op: mutex.LockAcquire, Name: "a", TTL: time.Second}); r.Err != nil {
		t.Fatalf("acquire after the refused requests: %v", r.Err)
	}
	if n := g.c.Node("node-1").Stats().Protocols[consensus.Name].Restarts; n != 0 {
		t.Errorf("%d raft restarts on bad input", n)
	}
}

func TestLeaseExpiresAndSurvivesSnapshotsAndRestarts(t *testing.T) {
	actortest.Virtual(t, testLeaseExpiresAndSurvivesSnapshotsAndRestarts)
}

func testLeaseExpiresAndSurvivesSnapshotsAndRestarts(t *testing.T) {
	g := newGroup(t, 3, 13, sim.Faults{}, func(c *consensus.Config) { c.SnapshotEntries = 4; c.CatchUpEntries = 1 })
	g.leader(5 * time.Second)
	long := g.lock("node-1", mutex.LockRequest{Op: mutex.LockAcquire, Name: "long", Owner: "carol", TTL: 20 * time.Second})
	short := g.lock("node-1", mutex.LockRequest{Op: mutex.LockAcquire, Name: "short", TTL: 300 * time.Millisecond})
	if long.Err != nil || short.Err != nil {
		t.Fatal(long.Err, short.Err)
	}
	start := time.Now()
	kv := g.kv("node-2")
	for i := range 10 {
		if _, err := kv.Put(ctxT(t, 5*time.Second), fmt.Sprint("k", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	// The short lease ends: the leader proposes its expiry.
	var again lockOutcome
	err := actortest.WaitFor(10*time.Second, func() bool {
		again = g.lock("node-3", mutex.LockRequest{Op: mutex.LockAcquire, Name: "short", TTL: 10 * time.Second})
		return !errors.Is(again.Err, mutex.ErrLockHeld)
	})
	if err != nil {
		t.Fatalf("the 300ms lease did not expire within 10s: %v", again.Err)
	}
	if again.Err != nil {
		t.Fatalf("the 300ms lease did not expire within 10s: %v", again.Err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("lock taken again %v after the 300ms grant", took)
	}
	if again.Token <= short.Token {
		t.Errorf("the new holder's token %d is not above the expired one's %d", again.Token, short.Token)
	}
	for _, n := range g.c.Names() {
		st, err := g.status(n)
		if err != nil || st.SnapshotIndex <= long.Token {
			t.Fatalf("%s: snapshot index %d (err %v); want one after the grant at %d", n, st.SnapshotIndex, err, long.Token)
		}
	}
	// Every node restarts from its data dir: the locks come back from the
	// snapshots (and log), held by the same tokens.
	for _, n := range g.c.Names() {
		if err := g.c.Crash(n); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range g.c.Names() {
		if _, err := g.c.Restart(n); err != nil {
			t.Fatal(err)
		}
	}
	g.leader(10 * time.Second)
	r := g.lock("node-2", mutex.LockRequest{Op: mutex.LockAcquire, Name: "long", TTL: time.Second})
	var he *mutex.LockHeldError
	if !errors.As(r.Err, &he) || he.Owner != "carol" {
		t.Fatalf("acquire of the long lease after restarts: %v; want it held by carol", r.Err)
	}
	if r := g.lock("node-3", mutex.LockRequest{Op: mutex.LockRelease, Name: "long", Token: long.Token}); r.Err != nil {
		t.Fatalf("release by the original token after restarts: %v", r.Err)
	}
	if r := g.lock("node-3", mutex.LockRequest{Op: mutex.LockRelease, Name: "short", Token: again.Token}); r.Err != nil {
		t.Fatalf("release of the second short lease after restarts: %v", r.Err)
	}
}

// A node left alone answers an acquire honestly: not applied, no quorum,
// with the count of voters it reaches — never a timeout once it knows.
func TestLockRequestWithoutQuorum(t *testing.T) { actortest.Virtual(t, testLockRequestWithoutQuorum) }

func testLockRequestWithoutQuorum(t *testing.T) {
	g := newGroup(t, 3, 14, sim.Faults{}, func(c *consensus.Config) { c.RequestTimeout = 500 * time.Millisecond })
	g.leader(5 * time.Second)
	for _, n := range []actors.NodeName{"node-2", "node-3"} {
		if err := g.c.Crash(n); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var r lockOutcome
	for ctx.Err() == nil {
		r = g.lock("node-1", mutex.LockRequest{Op: mutex.LockAcquire, Name: "x", TTL: time.Second})
		var u *consensus.UnavailableError
		if errors.As(r.Err, &u) && errors.Is(r.Err, consensus.ErrNoQuorum) {
			if len(u.Reachable) != 1 || len(u.Voters) != 3 || !errors.Is(r.Err, consensus.ErrNotApplied) {
				t.Fatalf("no quorum: reachable %v of voters %v (not applied: %v); want 1 of 3", u.Reachable, u.Voters, errors.Is(r.Err, consensus.ErrNotApplied))
			}
			return // the lone node knows it has no quorum: refused at once
		}
		// Before it knows: proposed to a leader that is gone (outcome
		// unknown), or held and never proposed (not applied).
		if !errors.Is(r.Err, consensus.ErrTimeout) && !errors.Is(r.Err, consensus.ErrNotApplied) {
			t.Fatalf("acquire without a quorum: %v; want ErrTimeout or ErrNotApplied, then ErrNoQuorum", r.Err)
		}
	}
	t.Fatalf("acquire without a quorum never refused with ErrNoQuorum: %v", r.Err)
}

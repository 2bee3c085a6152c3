package mutex_test

import (
	"context"
	"errors"
	"flag"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/mutex"
	"github.com/troupe-dev/troupe/transport/sim"
)

var (
	flagSeeds    = flag.Int("mutex.seeds", 0, "seeds of the mutual exclusion sweep (default 100, 20 under -race)")
	flagFirst    = flag.Uint64("mutex.first", 1, "first seed of the sweep (to replay one: -mutex.first=N -mutex.seeds=1)")
	flagParallel = flag.Int("mutex.parallel", 8, "seeds of the sweep run at once")
)

const (
	reqType   = "troupe.mutex.v1.MutexRequest"
	replyType = "troupe.mutex.v1.MutexReply"
	helloType = "troupe.mutex.v1.MutexHello"
)

// fastReliable retransmits after 4ms, for lossy runs.
func fastReliable(_ int, c *actors.Config) {
	c.Reliable.RTO = 4 * time.Millisecond
	c.Reliable.MaxRTO = 30 * time.Millisecond
}

// newRA starts Ricart–Agrawala with static members on an n-node sim cluster.
func newRA(t testing.TB, n int, opts ...cluster.Option) *cluster.Cluster {
	t.Helper()
	opts = append([]cluster.Option{cluster.NodeConfig(fastReliable)}, opts...)
	c := clustertest.NewCluster(t, n, opts...)
	mf, err := mutex.New(mutex.Config{Members: c.Names()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(mf); err != nil {
		t.Fatal(err)
	}
	return c
}

func client(t testing.TB, n *actors.Node) *mutex.Client {
	t.Helper()
	if n == nil {
		t.Fatal("node not running")
	}
	cl, err := mutex.NewClient(n, "")
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func status(t testing.TB, n *actors.Node) mutex.Status {
	t.Helper()
	st, err := client(t, n).Status(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// sent counts the mutex messages sent on the hub, by type (retransmissions
// and acks included; acks under actors.AckType).
func sent(h *sim.Hub) map[string]int64 {
	out := map[string]int64{}
	for _, r := range h.Stats() {
		if r.Protocol == string(mutex.Name) {
			out[r.Type] += r.Sent
		}
	}
	return out
}

// handled counts the mutex messages the protocols handled, by type: each
// message once, whatever the network did to it.
func handled(c *cluster.Cluster) map[string]int64 {
	out := map[string]int64{}
	for _, n := range c.Nodes() {
		for typ, st := range n.Stats().Protocols[mutex.Name].Types {
			out[typ] += st.MsgsIn
		}
	}
	return out
}

func TestMessagesPerEntry(t *testing.T) { actortest.Virtual(t, testMessagesPerEntry) }

func testMessagesPerEntry(t *testing.T) {
	const perNode = 4
	for _, n := range []int{2, 3, 5} {
		// A benign network; retransmission only if an ack is 250ms late.
		c := clustertest.NewCluster(t, n, cluster.NodeConfig(func(_ int, c *actors.Config) {
			c.Reliable.RTO, c.Reliable.MaxRTO = 250*time.Millisecond, time.Second
		}))
		mf, err := mutex.New(mutex.Config{Members: c.Names()})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(mf); err != nil {
			t.Fatal(err)
		}
		// A hello sent before its receiver ran the protocol waits for a
		// retransmission.
		actortest.Eventually(t, 5*time.Second, "every hello handled", func() bool {
			return handled(c)[helloType] == int64(n*(n-1))
		})
		wireBefore, before := sent(c.Hub), handled(c)
		chk := &checker{}
		if err := exercise(c, mutex.Name, perNode, 20*time.Second, chk); err != nil {
			t.Fatal(err)
		}
		entries, overlaps := chk.result()
		if len(overlaps) > 0 || entries != n*perNode {
			t.Fatalf("%d nodes: %d entries (want %d), overlaps %v", n, entries, n*perNode, overlaps)
		}
		wire, after := sent(c.Hub), handled(c)
		reqs, reps := after[reqType]-before[reqType], after[replyType]-before[replyType]
		want := int64(entries * (n - 1))
		if reqs != want || reps != want {
			t.Errorf("%d nodes, %d entries: %d requests and %d replies handled; want %d each (2(N-1) = %d per entry)", n, entries, reqs, reps, want, 2*(n-1))
		}
		var protoReqs, protoReps uint64
		for _, node := range c.Nodes() {
			st := status(t, node)
			protoReqs += st.RequestsSent
			protoReps += st.RepliesSent
		}
		if protoReqs != uint64(want) || protoReps != uint64(want) {
			t.Errorf("%d nodes: the protocols count %d requests and %d replies sent; want %d each", n, protoReqs, protoReps, want)
		}
		onWire := wire[reqType] - wireBefore[reqType] + wire[replyType] - wireBefore[replyType]
		acks := wire[actors.AckType] - wireBefore[actors.AckType]
		t.Logf("N=%d: %d entries, %.2f messages per entry (2(N-1) = %d); on the wire %.2f per entry (%d retransmissions), plus %.2f reliable-delivery acks per entry",
			n, entries, float64(reqs+reps)/float64(entries), 2*(n-1), float64(onWire)/float64(entries), onWire-reqs-reps, float64(acks)/float64(entries))
	}
}

func TestSingleMemberEntersAlone(t *testing.T) { actortest.Virtual(t, testSingleMemberEntersAlone) }

func testSingleMemberEntersAlone(t *testing.T) {
	c := newRA(t, 1)
	cl := client(t, c.Node("node-1"))
	for range 3 {
		g, err := cl.Lock(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Unlock(ctxT(t, 5*time.Second), g); err != nil {
			t.Fatal(err)
		}
	}
	if s := sent(c.Hub); len(s) != 0 {
		t.Errorf("a lone member sent %v; it needs no message", s)
	}
}

// TestMutualExclusionSweep runs many seeded clusters of 3 to 5 nodes on a
// network that loses, duplicates, reorders and delays messages; in each,
// every node enters three times at once. The checker must see at most one
// holder at any instant, and every entry must be granted.
func TestMutualExclusionSweep(t *testing.T) { actortest.Virtual(t, testMutualExclusionSweep) }

func testMutualExclusionSweep(t *testing.T) {
	seeds := *flagSeeds
	if seeds == 0 {
		seeds = 100 // each seed builds a cluster: about 20 seeds a second on two cores
		if actortest.RaceEnabled {
			seeds = 20
		}
	}
	type outcome struct {
		seed     uint64
		entries  int
		messages map[string]int64
		lost     int64
		err      error
	}
	work := make(chan uint64)
	results := make(chan outcome)
	var wg sync.WaitGroup
	for range max(1, *flagParallel) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range work {
				o := outcome{seed: seed}
				o.entries, o.messages, o.lost, o.err = sweepRun(seed)
				results <- o
			}
		}()
	}
	go func() {
		for i := range seeds {
			work <- *flagFirst + uint64(i)
		}
		close(work)
		wg.Wait()
		close(results)
	}()
	var entries int
	var lost int64
	total := map[string]int64{}
	failed := 0
	for o := range results {
		if o.err != nil {
			failed++
			t.Errorf("seed %d (replay: -run TestMutualExclusionSweep -mutex.first=%d -mutex.seeds=1): %v", o.seed, o.seed, o.err)
			continue
		}
		entries += o.entries
		lost += o.lost
		for k, v := range o.messages {
			total[k] += v
		}
	}
	t.Logf("%d seeds (%d failed), %d entries; on the wire per entry: %.2f requests, %.2f replies (with retransmissions and duplicates), %.2f acks; %d messages lost",
		seeds, failed, entries, float64(total[reqType])/float64(entries), float64(total[replyType])/float64(entries),
		float64(total[actors.AckType])/float64(entries), lost)
}

// sweepRun is one seed of the sweep.
func sweepRun(seed uint64) (entries int, messages map[string]int64, lost int64, err error) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	n := 3 + rng.IntN(3)
	faults := sim.Faults{
		Loss:      0.05 + 0.25*rng.Float64(),
		Duplicate: 0.1 * rng.Float64(),
		Reorder:   0.2 * rng.Float64(),
		Latency:   time.Duration(rng.IntN(1000)) * time.Microsecond,
		Jitter:    time.Duration(rng.IntN(2000)) * time.Microsecond,
	}
	c, err := cluster.Local(n, cluster.Sim(sim.Config{Seed: seed, Faults: faults, HoldTimeout: 2 * time.Millisecond}),
		cluster.Seed(seed), cluster.NodeConfig(fastReliable))
	if err != nil {
		return 0, nil, 0, err
	}
	defer c.Stop()
	mf, err := mutex.New(mutex.Config{Members: c.Names()})
	if err != nil {
		return 0, nil, 0, err
	}
	if err := c.Start(mf); err != nil {
		return 0, nil, 0, err
	}
	chk := &checker{}
	const perNode = 3
	if err := exercise(c, mutex.Name, perNode, 30*time.Second, chk); err != nil {
		return 0, nil, 0, err
	}
	entries, overlaps := chk.result()
	if len(overlaps) > 0 {
		return entries, nil, 0, errors.New("mutual exclusion violated: " + strings.Join(overlaps, "; "))
	}
	if entries != n*perNode {
		return entries, nil, 0, errors.New("entries missing")
	}
	return entries, sent(c.Hub), c.Hub.Stats().Total(sim.Protocol(string(mutex.Name))).Lost, nil
}

// grabAll is a broken mutex: it grants every Enter at once.
type grabAll struct{ held map[mutex.Grant]bool }

func (g *grabAll) Name() actors.ProtocolName { return mutex.Name }
func (g *grabAll) Init(ctx *actors.Context) error {
	g.held = map[mutex.Grant]bool{}
	var ts uint64
	actors.OnRequest(ctx, func(ctx *actors.Context, _ mutex.Enter) (mutex.Grant, error) {
		ts++
		gr := mutex.Grant{Node: ctx.Node(), Timestamp: ts}
		g.held[gr] = true
		return gr, nil
	})
	actors.OnRequest(ctx, func(ctx *actors.Context, r mutex.Release) (mutex.Grant, error) {
		delete(g.held, r.Grant)
		return r.Grant, nil
	})
	return nil
}

// TestCheckerCatchesAnUnsafeMutex shows that the checker's instants are
// fine enough to see overlapping entries: a mutex that grants everything
// at once is caught.
func TestCheckerCatchesAnUnsafeMutex(t *testing.T) {
	actortest.Virtual(t, testCheckerCatchesAnUnsafeMutex)
}

func testCheckerCatchesAnUnsafeMutex(t *testing.T) {
	c := clustertest.NewCluster(t, 4)
	if err := c.Start(func() actors.Protocol { return &grabAll{} }); err != nil {
		t.Fatal(err)
	}
	// Each node holds the section until all four are in it: a mutex that
	// grants everything lets them, so the overlap does not depend on the
	// scheduler interleaving four short sections (exercise's Gosched),
	// which it did not always do.
	chk := &checker{}
	var entered sync.WaitGroup
	entered.Add(len(c.Nodes()))
	allIn := make(chan struct{})
	go func() { entered.Wait(); close(allIn) }()
	var done sync.WaitGroup
	for _, n := range c.Nodes() {
		cl, ctx := client(t, n), ctxT(t, 20*time.Second) // t.Fatal on this goroutine only
		done.Add(1)
		go func() {
			defer done.Done()
			g, err := cl.Lock(ctx)
			if err != nil {
				t.Errorf("%s locking: %v", n.Name(), err)
				entered.Done()
				return
			}
			chk.enter(g)
			entered.Done()
			select {
			case <-allIn:
			case <-time.After(10 * time.Second):
				t.Errorf("%s: the other nodes did not all enter within 10 s", n.Name())
			}
			chk.exit(g)
			if err := cl.Unlock(ctx, g); err != nil {
				t.Errorf("%s releasing: %v", n.Name(), err)
			}
		}()
	}
	done.Wait()
	if _, overlaps := chk.result(); len(overlaps) == 0 {
		t.Fatal("the checker saw no overlap of four nodes in the section at once, granted by a mutex that grants everything")
	} else {
		t.Logf("%d overlaps seen, e.g. %s", len(overlaps), overlaps[0])
	}
}

// hold has node `name` take the section and returns its grant.
func hold(t *testing.T, c *cluster.Cluster, name actors.NodeName) mutex.Grant {
	t.Helper()
	g, err := client(t, c.Node(name)).Lock(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatalf("%s locking: %v", name, err)
	}
	return g
}

// lockAsync has node `name` ask for the section; the grant arrives on the
// channel. It returns once the node has the request.
func lockAsync(t *testing.T, c *cluster.Cluster, name actors.NodeName) <-chan mutex.Grant {
	t.Helper()
	cl := client(t, c.Node(name))
	before := status(t, c.Node(name))
	ctx := ctxT(t, time.Minute)
	ch := make(chan mutex.Grant, 1)
	go func() {
		if g, err := cl.Lock(ctx); err == nil {
			ch <- g
		}
	}()
	actortest.Eventually(t, 5*time.Second, string(name)+" has the request", func() bool {
		st := status(t, c.Node(name))
		return st.State != before.State || st.Queued != before.Queued || st.Entries != before.Entries
	})
	return ch
}

// waitState waits until node `name` is in state and awaits exactly `awaiting`.
func waitState(t *testing.T, c *cluster.Cluster, name actors.NodeName, state string, awaiting ...actors.NodeName) {
	t.Helper()
	var st mutex.Status
	err := actortest.WaitFor(10*time.Second, func() bool {
		st = status(t, c.Node(name))
		return st.State == state && slices.Equal(st.Awaiting, awaiting)
	})
	if err != nil {
		t.Fatalf("%s: state %s awaiting %v; want %s awaiting %v", name, st.State, st.Awaiting, state, awaiting)
	}
}

func TestRequestsAreServedInTimestampOrder(t *testing.T) {
	actortest.Virtual(t, testRequestsAreServedInTimestampOrder)
}

func testRequestsAreServedInTimestampOrder(t *testing.T) {
	c := newRA(t, 3)
	g3 := hold(t, c, "node-3")
	first := lockAsync(t, c, "node-1")
	waitState(t, c, "node-1", "wanted", "node-3")
	second := lockAsync(t, c, "node-2")
	waitState(t, c, "node-2", "wanted", "node-1", "node-3") // node-1 asked first: it defers node-2
	if err := client(t, c.Node("node-3")).Unlock(ctxT(t, 5*time.Second), g3); err != nil {
		t.Fatal(err)
	}
	g1 := actortest.Receive(t, first, 5*time.Second, "node-1's grant")
	select {
	case <-second:
		t.Fatal("node-2 entered while node-1 holds")
	default:
	}
	if err := client(t, c.Node("node-1")).Unlock(ctxT(t, 5*time.Second), g1); err != nil {
		t.Fatal(err)
	}
	g2 := actortest.Receive(t, second, 5*time.Second, "node-2's grant")
	if g1.Timestamp >= g2.Timestamp {
		t.Errorf("node-1 asked first with timestamp %d, node-2 later with %d: Lamport order broken", g1.Timestamp, g2.Timestamp)
	}
}

// fakeMembership publishes membership events on its node when told, so a
// test decides exactly when the mutex learns of a failure or a join.
type fakeMembership struct{}

type publish struct{ ev any }

func (fakeMembership) Name() actors.ProtocolName { return "fake-membership" }
func (fakeMembership) Init(ctx *actors.Context) error {
	actors.OnTell(ctx, func(ctx *actors.Context, p *publish) error {
		ctx.Notify(p.ev)
		return nil
	})
	return nil
}

func announce(t *testing.T, n *actors.Node, ev any) {
	t.Helper()
	if err := n.Tell("fake-membership", &publish{ev: ev}); err != nil {
		t.Fatal(err)
	}
}

func TestFailedMemberIsNoLongerAwaited(t *testing.T) {
	actortest.Virtual(t, testFailedMemberIsNoLongerAwaited)
}

func testFailedMemberIsNoLongerAwaited(t *testing.T) {
	c := newRA(t, 3)
	if err := c.Start(func() actors.Protocol { return fakeMembership{} }); err != nil {
		t.Fatal(err)
	}
	hold(t, c, "node-3")
	got := lockAsync(t, c, "node-1")
	waitState(t, c, "node-1", "wanted", "node-3")
	if err := c.Crash("node-3"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
		t.Fatal("node-1 entered while node-3, which it still counts as a member, held")
	default:
	}
	announce(t, c.Node("node-1"), &membership.MemberFailed{Member: membership.Member{Name: "node-3", State: membership.Failed}})
	g := actortest.Receive(t, got, 5*time.Second, "node-1's grant once node-3 is reported failed")
	if st := status(t, c.Node("node-1")); !slices.Equal(st.Members, []actors.NodeName{"node-2"}) {
		t.Errorf("node-1's members after node-3 failed: %v; want [node-2]", st.Members)
	}
	// node-2 still waits for node-1, not for the failed node.
	next := lockAsync(t, c, "node-2")
	waitState(t, c, "node-2", "wanted", "node-1", "node-3")
	announce(t, c.Node("node-2"), &membership.MemberLeft{Member: membership.Member{Name: "node-3", State: membership.Left}})
	waitState(t, c, "node-2", "wanted", "node-1")
	if err := client(t, c.Node("node-1")).Unlock(ctxT(t, 5*time.Second), g); err != nil {
		t.Fatal(err)
	}
	actortest.Receive(t, next, 5*time.Second, "node-2's grant")
}

func TestJoinedMemberIsAskedToo(t *testing.T) { actortest.Virtual(t, testJoinedMemberIsAskedToo) }

func testJoinedMemberIsAskedToo(t *testing.T) {
	c := clustertest.NewCluster(t, 3, cluster.NodeConfig(fastReliable))
	for name, members := range map[actors.NodeName][]actors.NodeName{"node-1": {"node-1", "node-2"}, "node-2": {"node-1", "node-2"}, "node-3": nil} {
		if members == nil {
			members = []actors.NodeName{"node-3"} // knows nobody yet
		}
		mf, err := mutex.New(mutex.Config{Members: members})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Node(name).Start(mf); err != nil {
			t.Fatal(err)
		}
		if err := c.Node(name).Start(func() actors.Protocol { return fakeMembership{} }); err != nil {
			t.Fatal(err)
		}
	}
	g2 := hold(t, c, "node-2")
	first := lockAsync(t, c, "node-1")
	waitState(t, c, "node-1", "wanted", "node-2")
	before := c.Hub.Stats().Total(func(k sim.Key) bool { return k.From == "node-1" && k.To == "node-3" && k.Type == reqType }).Sent
	announce(t, c.Node("node-1"), &membership.MemberJoined{Member: membership.Member{Name: "node-3", State: membership.Alive}})
	actortest.Eventually(t, 5*time.Second, "node-1 sends its pending request to the new member", func() bool {
		return c.Hub.Stats().Total(func(k sim.Key) bool { return k.From == "node-1" && k.To == "node-3" && k.Type == reqType }).Sent == before+1
	})
	waitState(t, c, "node-1", "wanted", "node-2") // node-3 replied at once
	// node-3 learnt of node-1 from its request; it asks node-1, which
	// asked earlier and defers it.
	third := lockAsync(t, c, "node-3")
	waitState(t, c, "node-3", "wanted", "node-1")
	if err := client(t, c.Node("node-2")).Unlock(ctxT(t, 5*time.Second), g2); err != nil {
		t.Fatal(err)
	}
	g1 := actortest.Receive(t, first, 5*time.Second, "node-1's grant")
	select {
	case <-third:
		t.Fatal("node-3 entered while node-1 holds")
	default:
	}
	if err := client(t, c.Node("node-1")).Unlock(ctxT(t, 5*time.Second), g1); err != nil {
		t.Fatal(err)
	}
	actortest.Receive(t, third, 5*time.Second, "node-3's grant")
}

func TestRestartedMemberIsAskedAgain(t *testing.T) {
	actortest.Virtual(t, testRestartedMemberIsAskedAgain)
}

func testRestartedMemberIsAskedAgain(t *testing.T) {
	c := newRA(t, 3)
	hold(t, c, "node-3")
	got := lockAsync(t, c, "node-1")
	waitState(t, c, "node-1", "wanted", "node-3")
	// node-3 crashes holding the section and comes back: its new
	// incarnation forgot the request it deferred, says hello, and node-1
	// asks it again.
	if err := c.Crash("node-3"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Restart("node-3"); err != nil {
		t.Fatal(err)
	}
	actortest.Receive(t, got, 10*time.Second, "node-1's grant after node-3 restarted")
}

// TestWithSWIM runs the protocol on live membership: the members are the
// view, and a holder that crashes is no longer waited for once SWIM
// declares it failed.
func TestWithSWIM(t *testing.T) { actortest.Virtual(t, testWithSWIM) }

func testWithSWIM(t *testing.T) {
	c := clustertest.NewCluster(t, 4, cluster.Membership(clustertest.SimMembership()), cluster.NodeConfig(fastReliable))
	actortest.Eventually(t, 10*time.Second, "every node sees 4 members", func() bool {
		for _, m := range c.Members() {
			if len(m.View().Live()) != 4 {
				return false
			}
		}
		return true
	})
	mf, err := mutex.New(mutex.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(mf); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes() {
		actortest.Eventually(t, 5*time.Second, string(n.Name())+" takes the 3 others from the view", func() bool {
			return len(status(t, n).Members) == 3
		})
	}
	hold(t, c, "node-4")
	a, b := lockAsync(t, c, "node-1"), lockAsync(t, c, "node-2")
	waitState(t, c, "node-1", "wanted", "node-4")
	if err := c.Crash("node-4"); err != nil {
		t.Fatal(err)
	}
	// node-1 asked first: it enters once node-4 is declared failed, then
	// node-2.
	g := actortest.Receive(t, a, 15*time.Second, "node-1's grant after node-4 failed")
	if err := client(t, c.Node("node-1")).Unlock(ctxT(t, 5*time.Second), g); err != nil {
		t.Fatal(err)
	}
	actortest.Receive(t, b, 5*time.Second, "node-2's grant")
}

func TestLockWithdrawnWhenTheContextEnds(t *testing.T) {
	actortest.Virtual(t, testLockWithdrawnWhenTheContextEnds)
}

func testLockWithdrawnWhenTheContextEnds(t *testing.T) {
	c := newRA(t, 3)
	g3 := hold(t, c, "node-3")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := client(t, c.Node("node-1")).Lock(ctx)
		done <- err
	}()
	waitState(t, c, "node-1", "wanted", "node-3")
	cancel()
	if err := actortest.Receive(t, done, 5*time.Second, "Lock's end"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock after cancel: %v; want context.Canceled", err)
	}
	waitState(t, c, "node-1", "idle")
	if err := client(t, c.Node("node-3")).Unlock(ctxT(t, 5*time.Second), g3); err != nil {
		t.Fatal(err)
	}
	// The abandoned round blocks nobody.
	g2 := hold(t, c, "node-2")
	if err := client(t, c.Node("node-2")).Unlock(ctxT(t, 5*time.Second), g2); err != nil {
		t.Fatal(err)
	}
	hold(t, c, "node-1")
}

func TestBadInput(t *testing.T) { actortest.Virtual(t, testBadInput) }

func testBadInput(t *testing.T) {
	c := newRA(t, 2)
	cl := client(t, c.Node("node-1"))
	g := hold(t, c, "node-1")
	wrong := mutex.Grant{Node: "node-1", Timestamp: g.Timestamp + 7}
	if err := cl.Unlock(ctxT(t, 5*time.Second), wrong); !errors.Is(err, mutex.ErrNotHolder) || !strings.Contains(err.Error(), "timestamp") {
		t.Errorf("unlock with a wrong grant: %v; want ErrNotHolder naming the timestamps", err)
	}
	if err := cl.Unlock(ctxT(t, 5*time.Second), g); err != nil {
		t.Fatal(err)
	}
	if err := cl.Unlock(ctxT(t, 5*time.Second), g); !errors.Is(err, mutex.ErrNotHolder) {
		t.Errorf("second unlock: %v; want ErrNotHolder", err)
	}
	// Withdrawals of no Enter, or of one answered already, do nothing.
	for _, w := range []*mutex.Withdraw{{}, {Ticket: new(mutex.Ticket)}} {
		if err := c.Node("node-1").Tell(mutex.Name, w); err != nil {
			t.Fatal(err)
		}
	}
	hold(t, c, "node-2")
	if r := c.Node("node-1").Stats().Protocols[mutex.Name].Restarts; r != 0 {
		t.Errorf("%d restarts of the mutex on bad input", r)
	}

	if _, err := mutex.New(mutex.Config{Name: "bad name"}); err == nil || !strings.Contains(err.Error(), `protocol name "bad name"`) {
		t.Errorf("a bad protocol name: %v", err)
	}
	if _, err := mutex.New(mutex.Config{Name: "m2", Members: []actors.NodeName{"node-1", "bad/name"}}); !errors.Is(err, mutex.ErrInvalidConfig) || !strings.Contains(err.Error(), "bad/name") {
		t.Errorf("a bad member name: %v; want ErrInvalidConfig naming it", err)
	}
	mf, err := mutex.New(mutex.Config{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Node("node-1").Start(mf)
	if err == nil || !strings.Contains(err.Error(), "membership.Attach") {
		t.Errorf("no members and no membership: %v; want an error naming membership.Attach", err)
	}
	if _, err := mutex.NewClient(c.Node("node-1"), "nope"); err == nil {
		t.Error("a client of a protocol that does not run")
	}
}

// TestLockOutwaitsTheRequestTimeout: a Lock waits as long as its context
// lets it, though each call times out after the node's RequestTimeout:
// asking again with the same Ticket keeps the request's place, and an
// Enter granted while its requester was between calls is answered again.
func TestLockOutwaitsTheRequestTimeout(t *testing.T) {
	actortest.Virtual(t, testLockOutwaitsTheRequestTimeout)
}

func testLockOutwaitsTheRequestTimeout(t *testing.T) {
	c := newRA(t, 3, cluster.NodeConfig(func(_ int, c *actors.Config) { c.RequestTimeout = 100 * time.Millisecond }))
	g3 := hold(t, c, "node-3")
	got := lockAsync(t, c, "node-1")
	waitState(t, c, "node-1", "wanted", "node-3")
	ts := status(t, c.Node("node-1")).Timestamp
	start := time.Now()
	actortest.Eventually(t, 10*time.Second, "three RequestTimeouts pass with node-1 waiting", func() bool {
		st := status(t, c.Node("node-1"))
		if st.State != "wanted" || st.Queued != 0 || st.Timestamp != ts {
			t.Fatalf("node-1 %s at timestamp %d (first %d) with %d queued; want one request waiting, its Ticket keeping its place", st.State, st.Timestamp, ts, st.Queued)
		}
		return time.Since(start) > 300*time.Millisecond
	})
	if err := client(t, c.Node("node-3")).Unlock(ctxT(t, 5*time.Second), g3); err != nil {
		t.Fatal(err)
	}
	g := actortest.Receive(t, got, 5*time.Second, "node-1's grant")
	if g.Timestamp != ts {
		t.Errorf("grant at timestamp %d; want the first request's, %d (one round)", g.Timestamp, ts)
	}
	if st := status(t, c.Node("node-1")); st.Entries != 1 || st.RequestsSent != 2 {
		t.Errorf("node-1: %d entries, %d requests sent; want 1 entry of one round (2 requests)", st.Entries, st.RequestsSent)
	}
}

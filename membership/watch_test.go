package membership_test

import (
	"fmt"
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
)

// changes is what one Watch gave on one node.
type changes struct {
	mu  sync.Mutex
	chs []membership.Change
}

func (c *changes) all() []membership.Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.chs)
}

// watching is a protocol that records every Change Watch gives its
// latest incarnation on each node.
func watching(name actors.ProtocolName, record map[actors.NodeName]*changes, mu *sync.Mutex) actors.Factory {
	return func() actors.Protocol {
		return protocolFunc{name: name, init: func(ctx *actors.Context) error {
			c := &changes{} // this incarnation's (a restarted node starts anew)
			mu.Lock()
			record[ctx.Node()] = c
			mu.Unlock()
			return membership.Watch(ctx, func(_ *actors.Context, ch membership.Change) error {
				c.mu.Lock()
				c.chs = append(c.chs, ch)
				c.mu.Unlock()
				return nil
			})
		}}
	}
}

// checkChanges checks what a Watch gave: the view first, then events,
// each Change's view the previous one with the event's member, and no
// join or suspicion that the view already held (a duplicate).
func checkChanges(t *testing.T, node string, chs []membership.Change) {
	t.Helper()
	if len(chs) == 0 {
		return
	}
	if !chs[0].Initial() || chs[0].Known {
		t.Errorf("%s: the first Change is %v (known %v); want the view", node, chs[0].Event, chs[0].Known)
	}
	for i := 1; i < len(chs); i++ {
		ch, prev := chs[i], chs[i-1]
		if ch.Initial() {
			t.Errorf("%s: Change %d is a second view", node, i)
			continue
		}
		mem := ch.Event.Of()
		before, known := prev.View.Get(mem.Name)
		if known != ch.Known || fmt.Sprint(before) != fmt.Sprint(ch.Before) {
			t.Errorf("%s: Change %d (%v): Before %v (known %v); the previous view held %v (%v)", node, i, ch.Event, ch.Before, ch.Known, before, known)
		}
		if got, _ := ch.View.Get(mem.Name); fmt.Sprint(got) != fmt.Sprint(mem) {
			t.Errorf("%s: Change %d (%v): its view holds %v", node, i, ch.Event, got)
		}
		if len(ch.View.Members) != len(prev.View.Members)+map[bool]int{true: 0, false: 1}[known] {
			t.Errorf("%s: Change %d (%v): %d members after %d", node, i, ch.Event, len(ch.View.Members), len(prev.View.Members))
		}
		// SWIM itself never tells a join or a suspicion twice (it may
		// repeat a failure or a leave, memberlist reporting it again).
		_, joined := ch.Event.(*membership.MemberJoined)
		_, suspect := ch.Event.(*membership.MemberSuspect)
		if (joined || suspect) && known && before.State == mem.State && before.Generation == mem.Generation {
			t.Errorf("%s: Change %d (%v) repeats what the view held: %v", node, i, ch.Event, before)
		}
	}
}

// states lists a view's members as name=state/generation.
func states(v membership.View) string {
	var out []string
	for _, m := range v.Members {
		out = append(out, fmt.Sprintf("%s=%s/%d", m.Name, m.State, m.Generation))
	}
	return strings.Join(out, " ")
}

// sawChange reports whether a Change satisfies pred.
func sawChange(c *changes, pred func(membership.Change) bool) bool {
	return c != nil && slices.ContainsFunc(c.all(), pred)
}

func last(c *changes) (membership.Change, bool) {
	all := c.all()
	if len(all) == 0 {
		return membership.Change{}, false
	}
	return all[len(all)-1], true
}

// Watch gives the view, then joins, failures and leaves, on a sim cluster
// with SWIM; a Watch that starts while a failure is being detected sees
// the failure once, in its view or as an event, never both nor neither.
func TestWatchFollowsTheMembershipOnSim(t *testing.T) {
	actortest.Virtual(t, testWatchFollowsTheMembershipOnSim)
}

func testWatchFollowsTheMembershipOnSim(t *testing.T) {
	c := clustertest.NewCluster(t, 5, cluster.Membership(simFast))
	clusterSeesAll(t, c, names(5), "every node sees 5 members")
	record, mu := map[actors.NodeName]*changes{}, &sync.Mutex{}
	if err := c.Start(watching("watch", record, mu)); err != nil {
		t.Fatal(err)
	}
	get := func(rec map[actors.NodeName]*changes, node actors.NodeName) *changes {
		mu.Lock()
		defer mu.Unlock()
		return rec[node]
	}
	// The view first, then the joins it did not hold yet (the membership
	// protocol answers the view its events have told, which may be behind
	// Membership.View): five live.
	actortest.Eventually(t, 10*time.Second, "every watcher knows 5 live members", func() bool {
		for _, n := range names(5) {
			ch, ok := last(get(record, n))
			if !ok || !slices.Equal(ch.View.LiveNames(), names(5)) {
				return false
			}
		}
		return true
	})
	for _, n := range names(5) {
		checkChanges(t, string(n), get(record, n).all())
	}

	// A failure, and a second Watch started while it is being detected.
	gen := c.Member("node-5").View().Self.Generation
	if err := c.Crash("node-5"); err != nil {
		t.Fatal(err)
	}
	late := map[actors.NodeName]*changes{}
	for _, n := range names(4) {
		if err := c.Node(n).Start(watching("late", late, mu)); err != nil {
			t.Fatal(err)
		}
	}
	failed := func(rec map[actors.NodeName]*changes, n actors.NodeName) bool {
		ch, ok := last(get(rec, n))
		m, _ := ch.View.Get("node-5")
		return ok && m.State == membership.Failed && m.Generation == gen
	}
	actortest.Eventually(t, 20*time.Second, "every watcher sees node-5 failed", func() bool {
		for _, n := range names(4) {
			if !failed(record, n) || !failed(late, n) {
				return false
			}
		}
		return true
	})
	for _, n := range names(4) {
		if !sawChange(get(record, n), func(ch membership.Change) bool {
			_, ok := ch.Event.(*membership.MemberFailed)
			return ok && ch.Event.Of().Name == "node-5" && ch.Known && ch.Before.State != membership.Failed
		}) {
			t.Errorf("%s: no Change is node-5's failure after it was live", n)
		}
		// The late watcher saw it once: in its view, or as one event.
		lateChs := get(late, n).all()
		m, _ := lateChs[0].View.Get("node-5")
		inView := m.State == membership.Failed
		events := 0
		for _, ch := range lateChs[1:] {
			if _, ok := ch.Event.(*membership.MemberFailed); ok && ch.Event.Of().Name == "node-5" {
				events++
			}
		}
		if inView == (events == 1) || events > 1 {
			t.Errorf("%s: the late watcher saw node-5's failure in its view %v and %d times as an event; want once", n, inView, events)
		}
	}

	// A restart: a join of a new generation.
	if _, err := c.Restart("node-5"); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 20*time.Second, "every watcher sees node-5 join with a new generation", func() bool {
		for _, n := range names(4) {
			if !sawChange(get(record, n), func(ch membership.Change) bool {
				j, joined := ch.Event.(*membership.MemberJoined)
				return joined && j.Member.Name == "node-5" && j.Member.Generation != gen
			}) {
				return false
			}
		}
		return true
	})

	// A leave.
	if err := c.Leave("node-2"); err != nil {
		t.Fatal(err)
	}
	others := []actors.NodeName{"node-1", "node-3", "node-4", "node-5"}
	actortest.Eventually(t, 20*time.Second, "every watcher sees node-2 leave", func() bool {
		for _, n := range others[:3] {
			if !sawChange(get(record, n), func(ch membership.Change) bool {
				_, left := ch.Event.(*membership.MemberLeft)
				return left && ch.Event.Of().Name == "node-2"
			}) {
				return false
			}
		}
		return true
	})
	for _, n := range others {
		for what, rec := range map[string]map[actors.NodeName]*changes{"watch": record, "late": late} {
			if w := get(rec, n); w != nil {
				checkChanges(t, string(n)+"/"+what, w.all())
			}
		}
	}
	// Each watcher's view ends as the membership's.
	actortest.Eventually(t, 20*time.Second, "every watcher's view is its membership's", func() bool {
		for _, n := range others[:3] {
			ch, _ := last(get(record, n))
			if states(ch.View) != states(c.Member(n).View()) {
				return false
			}
		}
		return true
	})
}

// fakeView stands in for the membership protocol: it answers the view
// between two events, the first of which the view holds, as the real one
// may when an event is relayed while the view is asked for.
type fakeView struct{ before, after membership.Event }

func (fakeView) Name() actors.ProtocolName { return membership.Name }
func (f fakeView) Init(ctx *actors.Context) error {
	actors.OnRequestDeferred(ctx, func(ctx *actors.Context, _ membership.ViewRequest, reply actors.Reply[membership.View]) error {
		ctx.Notify(f.before)
		v := membership.View{Self: membership.Member{Name: ctx.Node(), State: membership.Alive}}
		v.Members = []membership.Member{v.Self, f.before.Of()}
		if err := reply.Send(v); err != nil {
			return err
		}
		ctx.Notify(f.after)
		return nil
	})
	return nil
}

// An event published before the view is answered is in the view and is
// not given again; the one after it is given once, after the view.
func TestWatchSkipsTheEventsTheViewHolds(t *testing.T) {
	actortest.Virtual(t, testWatchSkipsTheEventsTheViewHolds)
}

func testWatchSkipsTheEventsTheViewHolds(t *testing.T) {
	c := clustertest.NewCluster(t, 1)
	n := c.Node("node-1")
	failed := &membership.MemberFailed{Member: membership.Member{Name: "node-9", Generation: 1, State: membership.Failed}}
	joined := &membership.MemberJoined{Member: membership.Member{Name: "node-9", Generation: 2, State: membership.Alive}}
	if err := n.Start(func() actors.Protocol { return fakeView{before: failed, after: joined} }); err != nil {
		t.Fatal(err)
	}
	record, mu := map[actors.NodeName]*changes{}, &sync.Mutex{}
	if err := n.Start(watching("watch", record, mu)); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 10*time.Second, "the watcher has the view and the join", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return record["node-1"] != nil && len(record["node-1"].all()) >= 2
	})
	chs := record["node-1"].all()
	if len(chs) != 2 {
		t.Fatalf("%d Changes; want 2 (the view, the join)", len(chs))
	}
	if m, _ := chs[0].View.Get("node-9"); !chs[0].Initial() || m.State != membership.Failed {
		t.Errorf("first Change %v: node-9 %v; want the view with node-9 failed", chs[0].Event, m)
	}
	if chs[1].Event != joined || !chs[1].Known || chs[1].Before.State != membership.Failed || chs[1].Before.Generation != 1 {
		t.Errorf("second Change %v, before %v (known %v); want the join, before it node-9 failed", chs[1].Event, chs[1].Before, chs[1].Known)
	}
	if got := chs[1].View.LiveNames(); !slices.Equal(got, []actors.NodeName{"node-1", "node-9"}) {
		t.Errorf("live after the join: %v; want [node-1 node-9]", got)
	}
	checkChanges(t, "node-1", chs)
}

// Watch fails at once on a node that runs no membership protocol.
func TestWatchNeedsTheMembershipProtocol(t *testing.T) {
	actortest.Virtual(t, testWatchNeedsTheMembershipProtocol)
}

func testWatchNeedsTheMembershipProtocol(t *testing.T) {
	c := clustertest.NewCluster(t, 1)
	err := c.Node("node-1").Start(watching("watch", map[actors.NodeName]*changes{}, &sync.Mutex{}))
	if err == nil || !strings.Contains(err.Error(), "membership.Attach") {
		t.Fatalf("starting a watcher without membership: %v; want an error naming membership.Attach", err)
	}
}

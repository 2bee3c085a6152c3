package membership_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/transport/sim"
)

// scrape gathers reg and returns the value of the series name whose labels
// include want (name=value pairs); false if there is none.
func scrape(t *testing.T, reg *prometheus.Registry, name string, want ...string) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering the registry: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(want); i += 2 {
				if !hasLabel(m, want[i], want[i+1]) {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func hasLabel(m *dto.Metric, name, value string) bool {
	return slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == name && l.GetValue() == value })
}

// series is scrape that fails the test when the series is missing.
func series(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	v, ok := scrape(t, reg, name, labels...)
	if !ok {
		t.Fatalf("/metrics has no %s%v", name, labels)
	}
	return v
}

// eventsAbout lists the events r holds about name, in order.
func eventsAbout(r *recorder, name actors.NodeName) []membership.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []membership.Event
	for _, ev := range r.events {
		if ev.Of().Name == name {
			out = append(out, ev)
		}
	}
	return out
}

// TestPartitionedNodeIsSuspectedThenConfirmedFailed: on a live 3-node
// cluster (sim network), node-3 cut off is suspected, then declared
// failed, by both others, and the troupe_swim_ series say so.
func TestPartitionedNodeIsSuspectedThenConfirmedFailed(t *testing.T) {
	c := clustertest.NewCluster(t, 3, cluster.Membership(simFast))
	clusterSeesAll(t, c, names(3), "every node sees 3 members")
	recs := map[actors.NodeName]*recorder{}
	regs := map[actors.NodeName]*prometheus.Registry{}
	for _, m := range c.Members() {
		r := &recorder{}
		m.Subscribe(r.add)
		recs[m.Name()] = r
		regs[m.Name()] = prometheus.NewRegistry()
		regs[m.Name()].MustRegister(membership.NewCollector(m))
	}
	before := map[actors.NodeName]float64{}
	for _, n := range []actors.NodeName{"node-1", "node-2"} {
		before[n] = series(t, regs[n], "troupe_swim_failures_total", "node", string(n))
		if got := series(t, regs[n], "troupe_swim_members", "node", string(n), "state", "alive"); got != 3 {
			t.Fatalf("%s: troupe_swim_members{state=alive} = %v before the partition; want 3", n, got)
		}
	}

	c.Partition([]actors.NodeName{"node-1", "node-2"}, []actors.NodeName{"node-3"})
	actortest.Eventually(t, 30*time.Second, "node-1 and node-2 declare node-3 failed", func() bool {
		return saw[*membership.MemberFailed](recs["node-1"], "node-3") && saw[*membership.MemberFailed](recs["node-2"], "node-3")
	})
	for _, n := range []actors.NodeName{"node-1", "node-2"} {
		evs := eventsAbout(recs[n], "node-3")
		suspect := slices.IndexFunc(evs, func(ev membership.Event) bool { _, ok := ev.(*membership.MemberSuspect); return ok })
		failed := slices.IndexFunc(evs, func(ev membership.Event) bool { _, ok := ev.(*membership.MemberFailed); return ok })
		if suspect < 0 || suspect > failed {
			t.Errorf("%s: events about node-3 %v; want a suspicion before the failure", n, evs)
		}
		reg, node := regs[n], string(n)
		if got := series(t, reg, "troupe_swim_failures_total", "node", node); got <= before[n] {
			t.Errorf("%s: troupe_swim_failures_total stayed at %v", n, got)
		}
		if got := series(t, reg, "troupe_swim_members", "node", node, "state", "failed"); got != 1 {
			t.Errorf("%s: troupe_swim_members{state=failed} = %v; want 1", n, got)
		}
		if got := series(t, reg, "troupe_swim_members", "node", node, "state", "alive"); got != 2 {
			t.Errorf("%s: troupe_swim_members{state=alive} = %v; want 2", n, got)
		}
		if got := series(t, reg, "troupe_swim_probes_total", "node", node); got == 0 {
			t.Errorf("%s: troupe_swim_probes_total is 0 after probing node-3 to failure", n)
		}
		probe := series(t, reg, "troupe_swim_suspicions_total", "node", node, "source", "probe")
		gossip := series(t, reg, "troupe_swim_suspicions_total", "node", node, "source", "gossip")
		if probe+gossip == 0 {
			t.Errorf("%s: troupe_swim_suspicions_total is 0 for both sources after suspecting node-3", n)
		}
	}
	if got := series(t, regs["node-1"], "troupe_swim_probe_failures_total", "node", "node-1") +
		series(t, regs["node-2"], "troupe_swim_probe_failures_total", "node", "node-2"); got == 0 {
		t.Error("troupe_swim_probe_failures_total is 0 on both sides of the partition")
	}
}

// TestPartitionedNodeRefutesTheSuspicion: node-3 cut off is suspected by
// node-1's probes and by node-2 through gossip (node-2 does not probe);
// suspicions last long enough that the partition heals first, and node-3
// refutes: both others see it alive again with a higher incarnation, their
// views hold node-3's current incarnation, and the series count it.
func TestPartitionedNodeRefutesTheSuspicion(t *testing.T) {
	hub, err := sim.New(sim.Config{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub.Close() })
	timing := membership.Timing{
		ProbeInterval:     50 * time.Millisecond,
		ProbeTimeout:      25 * time.Millisecond,
		GossipInterval:    10 * time.Millisecond,
		PushPullInterval:  time.Hour, // suspicions and refutations travel by gossip alone
		TCPTimeout:        time.Second,
		SuspicionMult:     2000, // a suspicion lasts 100 s at least: the partition heals long before
		ReconnectInterval: time.Hour,
	}
	var nodes []*testNode
	t.Cleanup(func() {
		for _, n := range nodes {
			_ = n.Shutdown()
		}
	})
	regs := map[actors.NodeName]*prometheus.Registry{}
	for i := range 3 {
		name := actors.NodeName(fmt.Sprintf("node-%d", i+1))
		tr, err := hub.Memberlist(string(name))
		if err != nil {
			t.Fatal(err)
		}
		cfg := membership.Config{Name: name, Preset: membership.PresetLAN, Timing: timing, Transport: tr}
		if name == "node-2" {
			// node-2 never probes: it can only learn of node-3's
			// suspicion by gossip.
			cfg.Timing.ProbeInterval = time.Hour
		}
		if i > 0 {
			cfg.Seeds = []string{nodes[0].GossipAddr()}
		}
		m, err := membership.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n := &testNode{Membership: m, rec: &recorder{}}
		m.Subscribe(n.rec.add)
		nodes = append(nodes, n)
		if err := m.Join(context.Background()); err != nil {
			t.Fatal(err)
		}
		regs[name] = prometheus.NewRegistry()
		regs[name].MustRegister(membership.NewCollector(m))
	}
	allSeeAll(t, nodes, names(3))
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	inc := n3.View().Self.Incarnation

	hub.Partition([]string{"node-1", "node-2"}, []string{"node-3"})
	actortest.Eventually(t, 30*time.Second, "node-1 suspects node-3 by its probes, node-2 by gossip", func() bool {
		return suspectedBy(n1.rec, "node-3", false) && suspectedBy(n2.rec, "node-3", true)
	})
	if got := series(t, regs["node-1"], "troupe_swim_suspicions_total", "node", "node-1", "source", "probe"); got == 0 {
		t.Error("node-1: troupe_swim_suspicions_total{source=probe} is 0 after its probes suspected node-3")
	}
	if got := series(t, regs["node-2"], "troupe_swim_suspicions_total", "node", "node-2", "source", "gossip"); got == 0 {
		t.Error("node-2: troupe_swim_suspicions_total{source=gossip} is 0 after it learnt node-3's suspicion")
	}
	if got := series(t, regs["node-1"], "troupe_swim_members", "node", "node-1", "state", "suspect"); got != 1 {
		t.Errorf("node-1: troupe_swim_members{state=suspect} = %v while node-3 is suspected; want 1", got)
	}

	hub.Heal()
	actortest.Eventually(t, 30*time.Second, "node-1 and node-2 see node-3 refute", func() bool {
		return refuted(n1.rec, "node-3") && refuted(n2.rec, "node-3")
	})
	now := n3.View().Self.Incarnation
	if now <= inc {
		t.Fatalf("node-3's incarnation is %d after refuting; it was %d", now, inc)
	}
	actortest.Eventually(t, 30*time.Second, "node-1 and node-2 hold node-3 alive at its current incarnation", func() bool {
		for _, n := range []*testNode{n1, n2} {
			mem, ok := n.View().Get("node-3")
			if !ok || mem.State != membership.Alive || mem.Incarnation != n3.View().Self.Incarnation {
				return false
			}
		}
		return true
	})
	for _, n := range []*testNode{n1, n2} {
		evs := eventsAbout(n.rec, "node-3")
		s := slices.IndexFunc(evs, func(ev membership.Event) bool { _, ok := ev.(*membership.MemberSuspect); return ok })
		r := slices.IndexFunc(evs, func(ev membership.Event) bool { u, ok := ev.(*membership.MemberUpdated); return ok && u.Refuted })
		if s < 0 || r < s {
			t.Errorf("%s: events about node-3 %v; want the suspicion, then the refutation", n.Name(), evs)
		}
		if u := evs[r].(*membership.MemberUpdated); u.Member.Incarnation <= evs[s].Of().Incarnation || u.Member.State != membership.Alive {
			t.Errorf("%s: refutation %v does not raise the incarnation of suspicion %v", n.Name(), u, evs[s])
		}
		if saw[*membership.MemberFailed](n.rec, "node-3") {
			t.Errorf("%s declared node-3 failed; the suspicion was to be refuted", n.Name())
		}
		if got := series(t, regs[n.Name()], "troupe_swim_refutations_total", "node", string(n.Name()), "by", "member"); got == 0 {
			t.Errorf("%s: troupe_swim_refutations_total{by=member} is 0 after node-3 refuted", n.Name())
		}
	}
	if got := series(t, regs["node-3"], "troupe_swim_refutations_total", "node", "node-3", "by", "self"); got == 0 {
		t.Error("node-3: troupe_swim_refutations_total{by=self} is 0 after it refuted a suspicion")
	}
	if got := series(t, regs["node-3"], "troupe_swim_incarnation", "node", "node-3"); got < float64(now) {
		t.Errorf("node-3: troupe_swim_incarnation = %v; its view says %d", got, now)
	}
}

func suspectedBy(r *recorder, name actors.NodeName, byGossip bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.events, func(ev membership.Event) bool {
		s, ok := ev.(*membership.MemberSuspect)
		return ok && s.Member.Name == name && s.ByGossip == byGossip
	})
}

func refuted(r *recorder, name actors.NodeName) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.events, func(ev membership.Event) bool {
		u, ok := ev.(*membership.MemberUpdated)
		return ok && u.Member.Name == name && u.Refuted
	})
}

package election_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/election"
	pb "github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport/sim"
)

// swim is membership for the sim network.
var swim = clustertest.SimMembership()

var bullyCfg = election.BullyConfig{OKTimeout: 150 * time.Millisecond, CoordinatorTimeout: 400 * time.Millisecond}

// detectionBound is the longest SWIM may take to declare a node failed
// with swim's timings among n nodes: every member is probed within n-1
// probe intervals (memberlist probes round-robin), the probe times out,
// and an unconfirmed suspicion lasts at most SuspicionMaxTimeoutMult times
// SuspicionMult·log10(n) probe intervals; then gossip spreads the news.
func detectionBound(n int) time.Duration {
	t := swim.Timing
	scale := math.Max(1, math.Log10(float64(n)))
	suspicion := time.Duration(6 * 4 * scale * float64(t.ProbeInterval))
	return time.Duration(n-1)*t.ProbeInterval + t.ProbeTimeout + suspicion + 10*t.GossipInterval
}

// electionBound is the longest an election takes once failures are known:
// an OK timeout, a Coordinator timeout, and a second election's OK timeout,
// plus reliable retransmissions (a few RTOs).
func electionBound() time.Duration {
	return 2*bullyCfg.OKTimeout + bullyCfg.CoordinatorTimeout + 200*time.Millisecond
}

func newCluster(t *testing.T, n int, opts ...cluster.Option) *cluster.Cluster {
	t.Helper()
	opts = append([]cluster.Option{cluster.Membership(swim), cluster.NodeConfig(func(_ int, c *actors.Config) {
		c.Reliable.RTO = 20 * time.Millisecond
		c.Reliable.MaxRTO = 100 * time.Millisecond
	})}, opts...)
	return clustertest.NewCluster(t, n, opts...)
}

func leaderOf(t *testing.T, n *actors.Node) election.Leader {
	t.Helper()
	l, err := actors.Call(context.Background(), n, election.Name, election.LeaderRequest{})
	if err != nil {
		t.Fatalf("asking %s for the leader: %v", n.Name(), err)
	}
	return l
}

// agree waits until every running node in `nodes` names `want` as leader,
// all with one term, and returns that term.
func agree(t *testing.T, c *cluster.Cluster, nodes []actors.NodeName, want actors.NodeName, within time.Duration) uint64 {
	t.Helper()
	var term uint64
	var last []string
	err := actortest.WaitFor(within, func() bool {
		last = last[:0]
		terms := map[uint64]bool{}
		ok := true
		for _, name := range nodes {
			l := leaderOf(t, c.Node(name))
			last = append(last, fmt.Sprintf("%s→%s@%d", name, l.Name, l.Term))
			terms[l.Term] = true
			term = l.Term
			ok = ok && l.Name == want
		}
		return ok && len(terms) == 1
	})
	if err != nil {
		restarts := map[actors.NodeName]int64{}
		for _, name := range nodes {
			restarts[name] = c.Node(name).Stats().Protocols[election.Name].Restarts
		}
		t.Fatalf("nodes %v do not all follow %s within %v: %v (elector restarts %v)", nodes, want, within, last, restarts)
	}
	return term
}

// electionMessages counts the election protocol's messages sent, by type.
func electionMessages(h *sim.Hub) map[string]int64 {
	out := map[string]int64{}
	for _, r := range h.Stats() {
		if r.Protocol == string(election.Name) {
			out[r.Type] += r.Sent
		}
	}
	return out
}

func diff(after, before map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func TestBullyElectsTheHighestAndFailsOver(t *testing.T) {
	actortest.Virtual(t, testBullyElectsTheHighestAndFailsOver)
}

func testBullyElectsTheHighestAndFailsOver(t *testing.T) {
	c := newCluster(t, 5)
	ef, err := election.New(election.Config{Bully: bullyCfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ef); err != nil {
		t.Fatal(err)
	}
	all := c.Names()
	term := agree(t, c, all, "node-5", 10*time.Second)
	t.Logf("boot: all follow node-5 at term %d; messages %v", term, electionMessages(c.Hub))

	before := electionMessages(c.Hub)
	killed := time.Now()
	if err := c.Crash("node-5"); err != nil {
		t.Fatal(err)
	}
	bound := detectionBound(5) + electionBound()
	next := agree(t, c, all[:4], "node-4", bound)
	took := time.Since(killed)
	if next <= term {
		t.Errorf("the new leadership has term %d, not above the old %d", next, term)
	}
	t.Logf("failover to node-4 in %v (bound %v); messages %v", took, bound, diff(electionMessages(c.Hub), before))
}

func TestBullyConvergesUnderLoss(t *testing.T) { actortest.Virtual(t, testBullyConvergesUnderLoss) }

func testBullyConvergesUnderLoss(t *testing.T) {
	c := newCluster(t, 5, cluster.Sim(sim.Config{Seed: 3}))
	c.Hub.SetFaults(sim.Faults{Loss: 0.4})
	ef, err := election.New(election.Config{Bully: bullyCfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ef); err != nil {
		t.Fatal(err)
	}
	agree(t, c, c.Names(), "node-5", 20*time.Second)
	if err := c.Crash("node-5"); err != nil {
		t.Fatal(err)
	}
	agree(t, c, c.Names()[:4], "node-4", 20*time.Second)
	// The hub draws each message's fate in send order from its seed, so
	// whether one is lost depends only on how many are sent: 14 to 23
	// here (retransmissions and acks included). At 20% loss the seed's
	// first loss came late enough that a run sending few lost none; at
	// 40% one of the first few is lost.
	tot := c.Hub.Stats().Total(sim.Protocol(string(election.Name)))
	if tot.Lost == 0 {
		t.Errorf("no election message was lost of %d sent: the fault did not apply", tot.Sent)
	}
	t.Logf("election messages: %d sent, %d lost", tot.Sent, tot.Lost)
}

func TestBullyPartitionAndHeal(t *testing.T) { actortest.Virtual(t, testBullyPartitionAndHeal) }

func testBullyPartitionAndHeal(t *testing.T) {
	c := newCluster(t, 5)
	ef, err := election.New(election.Config{Bully: bullyCfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ef); err != nil {
		t.Fatal(err)
	}
	agree(t, c, c.Names(), "node-5", 10*time.Second)
	small, big := []actors.NodeName{"node-1", "node-2"}, []actors.NodeName{"node-3", "node-4", "node-5"}
	c.Partition(small, big)
	// Each side has at most one leader: its highest node.
	agree(t, c, small, "node-2", 20*time.Second)
	agree(t, c, big, "node-5", 5*time.Second)
	c.Hub.Heal()
	agree(t, c, c.Names(), "node-5", 20*time.Second)
}

func TestBullyIgnoresStaleCoordinator(t *testing.T) {
	actortest.Virtual(t, testBullyIgnoresStaleCoordinator)
}

func testBullyIgnoresStaleCoordinator(t *testing.T) {
	// node-1 runs an impostor in place of the elector; node-2..node-6 elect.
	c := newCluster(t, 6)
	impostor := actortest.NewImpostor(election.Name)
	if err := c.Node("node-1").Start(impostor.Factory()); err != nil {
		t.Fatal(err)
	}
	electors := c.Names()[1:]
	for _, name := range electors {
		ef, err := election.New(election.Config{Bully: bullyCfg})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Node(name).Start(ef); err != nil {
			t.Fatal(err)
		}
	}
	term := agree(t, c, electors, "node-6", 10*time.Second)
	before := electionMessages(c.Hub)
	for _, stale := range []*pb.Coordinator{{Term: term - 1, Leader: "node-2"}, {Term: term - 1, Leader: "node-6"}} {
		impostor.Send(t, c.Node("node-1"), "node-3", stale, false)
	}
	actortest.Eventually(t, 5*time.Second, "node-3 answers each stale Coordinator with StaleTerm", func() bool {
		return diff(electionMessages(c.Hub), before)["troupe.election.v1.StaleTerm"] >= 2
	})
	// A stale Coordinator would move node-3 back to term-1 (or to node-2);
	// a later term is a fresh election, which a membership flap on a busy
	// machine may cause, and which node-6 wins again.
	if l := leaderOf(t, c.Node("node-3")); l.Name != "node-6" || l.Term < term {
		t.Fatalf("after stale Coordinators node-3 follows %s at term %d; want node-6 at %d or later", l.Name, l.Term, term)
	}
}

func TestNaturalOrderPicksNode10(t *testing.T) { actortest.Virtual(t, testNaturalOrderPicksNode10) }

func testNaturalOrderPicksNode10(t *testing.T) {
	if actortest.RaceEnabled {
		// Ten SWIM members on the sim slowed 5–10× by the detector flap
		// on a busy 2-core machine, and every flap is a new election.
		t.Skip("ten SWIM members under the race detector flap on 2 cores; this test runs without -race")
	}
	c := newCluster(t, 10)
	ef, err := election.New(election.Config{Bully: bullyCfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ef); err != nil {
		t.Fatal(err)
	}
	agree(t, c, c.Names(), "node-10", 10*time.Second)
}

func TestPriorityOverridesNames(t *testing.T) { actortest.Virtual(t, testPriorityOverridesNames) }

func testPriorityOverridesNames(t *testing.T) {
	c := newCluster(t, 3)
	prio := func(n actors.NodeName) int {
		if n == "node-1" {
			return 1
		}
		return 0
	}
	ef, err := election.New(election.Config{Bully: election.BullyConfig{Priority: prio, OKTimeout: bullyCfg.OKTimeout, CoordinatorTimeout: bullyCfg.CoordinatorTimeout}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ef); err != nil {
		t.Fatal(err)
	}
	agree(t, c, c.Names(), "node-1", 10*time.Second)
}

func TestBullyNeedsMembership(t *testing.T) { actortest.Virtual(t, testBullyNeedsMembership) }

func testBullyNeedsMembership(t *testing.T) {
	c := clustertest.NewCluster(t, 1)
	ef, err := election.New(election.Config{Bully: bullyCfg})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Node("node-1").Start(ef)
	if err == nil || !strings.Contains(err.Error(), "membership.Attach") {
		t.Fatalf("starting Bully without membership: err = %v; want one naming membership.Attach", err)
	}
}

// A new BullyConfig takes effect at the next election without a restart:
// a priority that ranks node-1 first makes it the next leader; a negative
// timeout is refused.
func TestBullyReconfigure(t *testing.T) { actortest.Virtual(t, testBullyReconfigure) }

func testBullyReconfigure(t *testing.T) {
	c := newCluster(t, 4)
	ef, err := election.New(election.Config{Bully: bullyCfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ef); err != nil {
		t.Fatal(err)
	}
	agree(t, c, c.Names(), "node-4", 10*time.Second)
	bad := bullyCfg
	bad.OKTimeout = -time.Second
	if err := c.Node("node-1").Reconfigure(context.Background(), election.Name, bad); !errors.Is(err, actors.ErrReconfigureRefused) {
		t.Fatalf("negative OKTimeout: %v, want a refusal", err)
	}
	next := bullyCfg
	next.Priority = func(n actors.NodeName) int {
		if n == "node-1" {
			return 1
		}
		return 0
	}
	for _, n := range c.Nodes() {
		if err := n.Reconfigure(context.Background(), election.Name, next); err != nil {
			t.Fatalf("reconfiguring %s: %v", n.Name(), err)
		}
	}
	if err := c.Crash("node-4"); err != nil {
		t.Fatal(err)
	}
	agree(t, c, c.Names()[:3], "node-1", detectionBound(4)+electionBound())
}

package telemetry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/jobs/jobstest"
	"github.com/troupe-dev/troupe/telemetry"
	"github.com/troupe-dev/troupe/transport/sim"
)

// latest returns the first alert of kind about subject in n's history
// (active ones come first, then the newest).
func latest(t testing.TB, n *actors.Node, kind telemetry.Kind, subject string) (telemetry.Alert, bool) {
	t.Helper()
	h := history(t, n)
	i := slices.IndexFunc(h, func(a telemetry.Alert) bool { return a.Kind == kind && a.Subject == subject })
	if i < 0 {
		return telemetry.Alert{}, false
	}
	return h[i], true
}

// agree waits until the latest alert of kind about subject is in state on
// every node in nodes, the same alert with the same times everywhere, and
// returns it.
func agree(t testing.TB, c *cluster.Cluster, nodes []actors.NodeName, kind telemetry.Kind, subject string, state telemetry.AlertState, within time.Duration) telemetry.Alert {
	t.Helper()
	var seen []string
	var one telemetry.Alert
	err := actortest.WaitFor(within, func() bool {
		seen = seen[:0]
		ok := true
		for i, name := range nodes {
			a, found := latest(t, c.Node(name), kind, subject)
			seen = append(seen, fmt.Sprintf("%s: %s %s raised by %s at %s, ended %s by %q", name, a.ID, a.State, a.RaisedBy,
				a.Started.Format(time.StampMicro), a.Ended.Format(time.StampMicro), a.ResolvedBy))
			if !found || a.State != state {
				ok = false
				continue
			}
			if i == 0 {
				one = a
			} else if a.ID != one.ID || a.RaisedBy != one.RaisedBy || !a.Started.Equal(one.Started) ||
				!a.Ended.Equal(one.Ended) || a.ResolvedBy != one.ResolvedBy {
				ok = false
			}
		}
		return ok
	})
	if err != nil {
		t.Fatalf("%s alert about %q: not %s and the same on every node of %v within %v:\n%s", kind, subject, state, nodes, within, strings.Join(seen, "\n"))
	}
	return one
}

// TestFailedMemberAlertResolvesOnEveryNode: a crashed member's alert is
// active on every survivor; when the member is back it is resolved on every
// node, the member included, with the raising node's start and end.
func TestFailedMemberAlertResolvesOnEveryNode(t *testing.T) {
	actortest.Virtual(t, testFailedMemberAlertResolvesOnEveryNode)
}

func testFailedMemberAlertResolvesOnEveryNode(t *testing.T) {
	c := newCluster(t, 3, testConfig(nil))
	victim, survivors := actors.NodeName("node-1"), []actors.NodeName{"node-2", "node-3"}
	if err := c.Crash(victim); err != nil {
		t.Fatal(err)
	}
	raised := agree(t, c, survivors, telemetry.MemberFailed, string(victim), telemetry.Active, jobstest.Failover)
	if raised.Key != "member_failed/"+string(victim) || !slices.Contains(survivors, raised.RaisedBy) || !raised.Ended.IsZero() {
		t.Fatalf("the failure's alert is %+v; want key member_failed/%s raised by a survivor, no end", raised, victim)
	}
	if _, err := c.Restart(victim); err != nil {
		t.Fatal(err)
	}
	resolved := agree(t, c, c.Names(), telemetry.MemberFailed, string(victim), telemetry.Resolved, jobstest.Failover)
	if resolved.ID != raised.ID || !resolved.Started.Equal(raised.Started) || resolved.RaisedBy != raised.RaisedBy {
		t.Errorf("resolved %+v; want the alert raised, %+v", resolved, raised)
	}
	// On virtual time the restart can be seen in the very instant the
	// failure was: the end is at or after the start, never before.
	if resolved.ResolvedBy != raised.RaisedBy || resolved.Ended.Before(resolved.Started) {
		t.Errorf("resolved by %s at %v (started %v); want by the raising node %s, at or after the start",
			resolved.ResolvedBy, resolved.Ended, resolved.Started, raised.RaisedBy)
	}
	t.Logf("member_failed/%s raised by %s, lasted %v", victim, resolved.RaisedBy, resolved.Ended.Sub(resolved.Started))
}

// TestQuorumLostOnAMinorityAndRegained: a node cut off from the other two
// voters of its raft group raises quorum_lost; when the partition heals it
// resolves it, and every node holds the same alert.
func TestQuorumLostOnAMinorityAndRegained(t *testing.T) {
	actortest.Virtual(t, testQuorumLostOnAMinorityAndRegained)
}

func testQuorumLostOnAMinorityAndRegained(t *testing.T) {
	c := clustertest.NewCluster(t, 3, cluster.Sim(sim.Config{Seed: 7}), cluster.Membership(jobstest.Swim),
		cluster.NodeConfig(func(_ int, c *actors.Config) {
			c.Reliable.RTO = 20 * time.Millisecond
			c.Reliable.MaxRTO = 100 * time.Millisecond
		}))
	ef, err := election.New(election.Config{Elector: election.RaftElector})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ef); err != nil {
		t.Fatal(err)
	}
	startRaft(t, c)
	startTelemetry(t, c, testConfig(nil))
	actortest.Eventually(t, 10*time.Second, "every node follows a raft leader", func() bool {
		for _, n := range c.Nodes() {
			if l, err := actors.Call(context.Background(), n, election.Name, election.LeaderRequest{}); err != nil || l.Name == "" {
				return false
			}
		}
		return true
	})
	for _, n := range c.Nodes() {
		for _, a := range history(t, n) {
			if a.Kind == telemetry.QuorumLost && a.State == telemetry.Active {
				t.Fatalf("%s holds %+v in a whole cluster", n.Name(), a)
			}
		}
	}

	c.Hub.Partition([]string{"node-1"}, []string{"node-2", "node-3"})
	raised := agree(t, c, []actors.NodeName{"node-1"}, telemetry.QuorumLost, "node-1", telemetry.Active, jobstest.Failover)
	if raised.Key != "quorum_lost/node-1" || raised.RaisedBy != "node-1" || raised.Severity != telemetry.Critical ||
		!strings.Contains(raised.Message, "1 of its 3 voters") {
		t.Fatalf("node-1 raised %+v; want a critical quorum_lost/node-1 saying it reaches 1 of 3 voters", raised)
	}
	for _, name := range []actors.NodeName{"node-2", "node-3"} {
		if a, ok := latest(t, c.Node(name), telemetry.QuorumLost, string(name)); ok && a.State == telemetry.Active {
			t.Errorf("%s, on the majority side, lost quorum: %+v", name, a)
		}
	}

	c.Hub.Heal()
	resolved := agree(t, c, c.Names(), telemetry.QuorumLost, "node-1", telemetry.Resolved, jobstest.Failover)
	if resolved.ID != raised.ID || !resolved.Started.Equal(raised.Started) || resolved.ResolvedBy != "node-1" {
		t.Errorf("resolved %+v; want the alert raised, %+v, resolved by node-1", resolved, raised)
	}
}

// elector is an elector whose leader the test sets.
type elector struct{ leader election.Leader }

// setLeader tells the elector the leader to publish.
type setLeader election.Leader

func (*elector) Name() actors.ProtocolName { return election.Name }
func (*elector) Algorithm() string         { return "test" }
func (e *elector) Init(ctx *actors.Context) error {
	actors.OnRequest(ctx, func(*actors.Context, election.LeaderRequest) (election.Leader, error) { return e.leader, nil })
	actors.OnTell(ctx, func(ctx *actors.Context, l setLeader) error {
		e.leader = election.Leader(l)
		ctx.Notify(&election.LeaderChanged{Leader: l.Name, Term: l.Term})
		return nil
	})
	return nil
}

// TestLeaderLostAfterTheGraceAndResolvedOnElection: no leader for less
// than LeaderGrace raises nothing; for longer, leader_lost on every node,
// one alert; an election resolves it everywhere with the same times.
// Not on virtual time (actortest.Virtual): there the three nodes' grace
// timers fire at one instant and each raises leader_lost under its own ID,
// and the alert read as "raised" need not be the one that is resolved.
func TestLeaderLostAfterTheGraceAndResolvedOnElection(t *testing.T) {
	c := clustertest.NewCluster(t, 3, cluster.Membership(jobstest.Swim), cluster.NodeConfig(func(_ int, c *actors.Config) {
		c.Reliable.RTO = 20 * time.Millisecond
		c.Reliable.MaxRTO = 100 * time.Millisecond
	}))
	if err := c.Start(func() actors.Protocol { return &elector{} }); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(nil)
	cfg.LeaderGrace = 300 * time.Millisecond
	startTelemetry(t, c, cfg)
	tell := func(l setLeader) {
		t.Helper()
		for _, n := range c.Nodes() {
			if err := n.Tell(election.Name, l); err != nil {
				t.Fatal(err)
			}
		}
	}
	tell(setLeader{Name: "node-3", Term: 1})
	agree(t, c, c.Names(), telemetry.LeaderChanged, "node-3", telemetry.Event, 5*time.Second)
	// A blip: no leader, and a leader again at once.
	tell(setLeader{Term: 1})
	tell(setLeader{Name: "node-3", Term: 2})

	lost := time.Now()
	tell(setLeader{Term: 2})
	raised := agree(t, c, c.Names(), telemetry.LeaderLost, "node-3", telemetry.Active, 5*time.Second)
	if raised.Key != "leader_lost" || raised.Severity != telemetry.Critical || raised.Started.Before(lost.Add(cfg.LeaderGrace)) {
		t.Fatalf("leader_lost is %+v; want a critical alert raised %v after %v at the earliest", raised, cfg.LeaderGrace, lost.Format(time.StampMicro))
	}
	n := 0
	for _, a := range history(t, c.Node("node-1")) {
		if a.Kind == telemetry.LeaderLost {
			n++
		}
	}
	if n != 1 {
		t.Errorf("node-1 holds %d leader_lost alerts; want 1 (the blip is within the grace)", n)
	}

	tell(setLeader{Name: "node-2", Term: 3})
	resolved := agree(t, c, c.Names(), telemetry.LeaderLost, "node-3", telemetry.Resolved, 5*time.Second)
	if resolved.ID != raised.ID || !resolved.Started.Equal(raised.Started) || resolved.ResolvedBy != raised.RaisedBy ||
		resolved.Ended.Before(resolved.Started) {
		t.Errorf("resolved %+v; want the alert raised, %+v, ended by its raising node", resolved, raised)
	}
}

// An alert as GET /v1/alerts and the snapshot's alerts show it: a member's
// failure, resolved when it came back.
func ExampleAlert() {
	started := time.Date(2026, 12, 5, 4, 30, 0, 0, time.UTC)
	a := telemetry.Alert{ID: "node-2/187e1f5a2b3c4d00/7", Key: "member_failed/node-1", Kind: telemetry.MemberFailed,
		Subject: "node-1", Severity: telemetry.Critical, Message: "member node-1 failed", State: telemetry.Resolved,
		RaisedBy: "node-2", Started: started, Ended: started.Add(42 * time.Second), ResolvedBy: "node-2",
		Origin: "node-2", Time: started, Received: started.Add(time.Millisecond), Reporters: []actors.NodeName{"node-2", "node-3"}}
	b, _ := json.MarshalIndent(a, "", "  ")
	fmt.Println(string(b))
	// Output:
	// {
	//   "id": "node-2/187e1f5a2b3c4d00/7",
	//   "key": "member_failed/node-1",
	//   "kind": "member_failed",
	//   "subject": "node-1",
	//   "severity": "critical",
	//   "message": "member node-1 failed",
	//   "state": "resolved",
	//   "raised_by": "node-2",
	//   "started": "2026-12-05T04:30:00Z",
	//   "ended": "2026-12-05T04:30:42Z",
	//   "resolved_by": "node-2",
	//   "origin": "node-2",
	//   "time": "2026-12-05T04:30:00Z",
	//   "received": "2026-12-05T04:30:00.001Z",
	//   "reporters": [
	//     "node-2",
	//     "node-3"
	//   ]
	// }
}

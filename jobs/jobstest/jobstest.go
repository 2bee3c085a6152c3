package jobstest

import (
	"context"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/jobs"
)

// Swim is membership for the sim (clustertest.SimMembership).
var Swim = clustertest.SimMembership()

// Bully is the elector's configuration for the sim.
var Bully = election.BullyConfig{OKTimeout: 150 * time.Millisecond, CoordinatorTimeout: 400 * time.Millisecond}

// Failover bounds the time from a crash to a cluster that noticed it and
// follows a new leader: SWIM detection among 5 nodes with Swim's timings,
// an election, retransmissions, with room for a loaded 2-core machine.
const Failover = 10 * time.Second

// NewCluster starts n nodes on the sim network with membership, the Bully
// elector and the jobs protocol set up by cfg, waits until every node's
// jobs protocol follows node-n, and stops the cluster when the test ends.
func NewCluster(t testing.TB, n int, cfg jobs.Config, opts ...cluster.Option) *cluster.Cluster {
	t.Helper()
	opts = append([]cluster.Option{cluster.Membership(Swim), cluster.NodeConfig(func(_ int, c *actors.Config) {
		c.Reliable.RTO = 20 * time.Millisecond
		c.Reliable.MaxRTO = 100 * time.Millisecond
	})}, opts...)
	c := clustertest.NewCluster(t, n, opts...)
	ef, err := election.New(election.Config{Bully: Bully})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ef); err != nil {
		t.Fatal(err)
	}
	f, err := jobs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(f); err != nil {
		t.Fatal(err)
	}
	Follow(t, c, c.Names(), c.Names()[n-1])
	return c
}

// Stats asks a node for its jobs counters, failing the test on error.
func Stats(t testing.TB, n *actors.Node) jobs.Stats {
	t.Helper()
	s, err := actors.Call(context.Background(), n, jobs.Name, jobs.StatsRequest{})
	if err != nil {
		t.Fatalf("jobs stats of %s: %v", n.Name(), err)
	}
	return s
}

// Follow waits until the jobs protocol of every node in names follows
// leader, for at most Failover.
func Follow(t testing.TB, c *cluster.Cluster, names []actors.NodeName, leader actors.NodeName) {
	t.Helper()
	FollowWithin(t, c, names, leader, Failover)
}

// FollowWithin is Follow with a deadline of its own.
func FollowWithin(t testing.TB, c *cluster.Cluster, names []actors.NodeName, leader actors.NodeName, within time.Duration) {
	t.Helper()
	var last []string
	err := actortest.WaitFor(within, func() bool {
		last = last[:0]
		ok := true
		for _, name := range names {
			s := Stats(t, c.Node(name))
			last = append(last, string(name)+"→"+string(s.Leader))
			ok = ok && s.Leader == leader
		}
		return ok
	})
	if err != nil {
		t.Fatalf("the jobs protocols do not all follow %s within %v: %v", leader, within, last)
	}
}

// Await waits until job id ends at node n (its contact) and returns its
// status.
func Await(t testing.TB, n *actors.Node, id string, within time.Duration) jobs.Status {
	t.Helper()
	var st jobs.Status
	err := actortest.WaitFor(within, func() bool {
		var err error
		st, err = actors.Call(context.Background(), n, jobs.Name, jobs.StatusRequest{ID: id})
		if err != nil {
			t.Fatalf("status of %s at %s: %v", id, n.Name(), err)
		}
		return st.State.Ended()
	})
	if err != nil {
		t.Fatalf("job %s has not ended within %v: %+v", id, within, st)
	}
	return st
}

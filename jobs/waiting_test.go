package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/jobs/jobstest"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/mutex"
)

// silentElector is an elector that knows no leader and elects none: the
// test tells the jobs protocols who leads (election.LeaderChanged), so a
// cluster without a leader stays without one for as long as the test
// wants.
type silentElector struct{}

func (silentElector) Name() actors.ProtocolName { return election.Name }

func (silentElector) Init(ctx *actors.Context) error {
	actors.OnRequest(ctx, func(*actors.Context, election.LeaderRequest) (election.Leader, error) {
		return election.Leader{}, nil
	})
	return nil
}

// fakeRaft answers consensus.StatusRequest with the status the test set
// last (setRaft): the quorum view of a raft group that has lost its
// quorum, or runs an election, without running one.
type fakeRaft struct{ st consensus.Status }

type setRaft struct{ st consensus.Status }

func (*fakeRaft) Name() actors.ProtocolName { return consensus.Name }

func (f *fakeRaft) Init(ctx *actors.Context) error {
	actors.OnRequest(ctx, func(*actors.Context, consensus.StatusRequest) (consensus.Status, error) { return f.st, nil })
	actors.OnTell(ctx, func(_ *actors.Context, s setRaft) error { f.st = s.st; return nil })
	return nil
}

// leaderlessCluster starts n nodes with membership, the silent elector,
// the protocols of extra and the jobs protocol.
func leaderlessCluster(t *testing.T, n int, extra ...actors.Factory) *cluster.Cluster {
	t.Helper()
	c := clustertest.NewCluster(t, n, cluster.Membership(jobstest.Swim), cluster.NodeConfig(func(_ int, c *actors.Config) {
		c.Reliable.RTO = 20 * time.Millisecond
		c.Reliable.MaxRTO = 100 * time.Millisecond
	}))
	for _, f := range append([]actors.Factory{func() actors.Protocol { return silentElector{} }}, extra...) {
		if err := c.Start(f); err != nil {
			t.Fatal(err)
		}
	}
	f, err := jobs.New(jobsCfg(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(f); err != nil {
		t.Fatal(err)
	}
	return c
}

// lead announces on the nodes of names that leader leads, in term, as an
// elector would.
func lead(t *testing.T, c *cluster.Cluster, leader actors.NodeName, term uint64, names ...actors.NodeName) {
	t.Helper()
	for _, n := range names {
		if reached := c.Node(n).Publish(&election.LeaderChanged{Leader: leader, Term: term}); reached == 0 {
			t.Fatalf("no subscriber of election.LeaderChanged on %s", n)
		}
	}
}

// awaitWaiting waits until job id's status at its contact says why it
// waits, exactly want.
func awaitWaiting(t *testing.T, n *actors.Node, id, want string) jobs.Status {
	t.Helper()
	var st jobs.Status
	if err := actortest.WaitFor(jobstest.Failover, func() bool {
		st = status(t, n, id)
		return st.Waiting == want
	}); err != nil {
		t.Fatalf("job %s waits for %q, want %q (%+v)", id, st.Waiting, want, st)
	}
	return st
}

// A job with no leader to take it says so, and says nothing once a leader
// took it; a leader that fails (membership reports it, the elector has not
// moved on) is named.
func TestWaitingSaysWhyAJobDoesNotProgress(t *testing.T) {
	c := leaderlessCluster(t, 3)
	script := readScript(t, "squares.star")
	input := squaresInput(12, 10)
	want := reference(t, script, input, 6)

	id := submit(t, c.Node("node-1"), script, input, 6)
	if st := status(t, c.Node("node-1"), id); st.State != jobs.Pending || st.Waiting != "waiting for a leader" {
		t.Fatalf("a job with no leader: %+v, want pending, waiting for a leader", st)
	}
	list, err := actors.Call(context.Background(), c.Node("node-1"), jobs.Name, jobs.ListRequest{})
	if err != nil || len(list) != 1 || list[0].Waiting != "waiting for a leader" {
		t.Fatalf("list at the contact: %+v, %v; want the job waiting for a leader", list, err)
	}

	lead(t, c, "node-3", 1, c.Names()...)
	st := await(t, c.Node("node-1"), id, 30*time.Second)
	mustSucceed(t, st, want)
	if st.Waiting != "" {
		t.Errorf("a job that ended still waits: %q", st.Waiting)
	}

	// The leader dies; the elector (silent) still names it.
	if err := c.Crash("node-3"); err != nil {
		t.Fatal(err)
	}
	id = submit(t, c.Node("node-1"), script, input, 6)
	awaitWaiting(t, c.Node("node-1"), id, "waiting for a leader: the leader node-3 is not a live member (failed or left)")

	lead(t, c, "node-2", 2, "node-1", "node-2")
	if st := status(t, c.Node("node-1"), id); st.Waiting != "" {
		t.Errorf("a job whose contact follows a live leader waits: %q", st.Waiting)
	}
	st = await(t, c.Node("node-1"), id, 30*time.Second)
	mustSucceed(t, st, want)
	if st.Waiting != "" {
		t.Errorf("a job that ended still waits: %q", st.Waiting)
	}
}

// With the raft group on the node, a job with no leader says whether the
// quorum is lost (and how many voters are reachable) or an election runs,
// and nothing once a leader took it.
func TestWaitingSaysNoQuorum(t *testing.T) {
	voters := []actors.NodeName{"node-1", "node-2", "node-3", "node-4", "node-5"}
	c := leaderlessCluster(t, 2, func() actors.Protocol {
		return &fakeRaft{st: consensus.Status{Reason: "no_quorum", Reachable: []actors.NodeName{"node-1", "node-2"}, Voters: voters}}
	})
	script := readScript(t, "squares.star")
	input := squaresInput(12, 10)
	want := reference(t, script, input, 4)

	id := submit(t, c.Node("node-1"), script, input, 4)
	st := awaitWaiting(t, c.Node("node-1"), id,
		"no quorum: 2 of 5 voters reachable (node-1, node-2), a majority is 3; no leader can be elected until more are back")
	if st.State != jobs.Pending || st.PartsTotal != 0 {
		t.Errorf("a job with no quorum: %+v, want pending, not split", st)
	}

	// Three voters back: an election runs.
	election3 := consensus.Status{Reason: "election", Reachable: []actors.NodeName{"node-1", "node-2", "node-3"}, Voters: voters}
	if err := c.Node("node-1").Tell(consensus.Name, setRaft{election3}); err != nil {
		t.Fatal(err)
	}
	awaitWaiting(t, c.Node("node-1"), id, "waiting for a leader: an election is running (3 of 5 voters reachable)")

	// Elected.
	if err := c.Node("node-1").Tell(consensus.Name, setRaft{consensus.Status{Leader: "node-2", Reachable: voters, Voters: voters}}); err != nil {
		t.Fatal(err)
	}
	lead(t, c, "node-2", 3, c.Names()...)
	st = await(t, c.Node("node-1"), id, 30*time.Second)
	mustSucceed(t, st, want)
	if st.Waiting != "" {
		t.Errorf("a job that ended still waits: %q", st.Waiting)
	}

	// The leader lost again: the contact asks the raft group afresh, not
	// the answer it had before the leader.
	if err := c.Node("node-1").Tell(consensus.Name, setRaft{election3}); err != nil {
		t.Fatal(err)
	}
	lead(t, c, "", 3, c.Names()...)
	id = submit(t, c.Node("node-1"), script, input, 4)
	awaitWaiting(t, c.Node("node-1"), id, "waiting for a leader: an election is running (3 of 5 voters reachable)")
}

// The real thing: five nodes with the raft group as elector; two are cut
// off. The job submitted on their side says it has no quorum, with the
// counts, and runs once the partition heals.
func TestWaitingSaysNoQuorumWithRaft(t *testing.T) {
	c := clustertest.NewCluster(t, 5, cluster.Membership(jobstest.Swim), cluster.NodeConfig(func(_ int, c *actors.Config) {
		c.Reliable.RTO = 20 * time.Millisecond
		c.Reliable.MaxRTO = 100 * time.Millisecond
	}))
	rcfg := consensus.DefaultConfig()
	rcfg.Machines = []consensus.Machine{kv.DefaultMachine(), mutex.LockMachine()}
	rcfg.DataDir, rcfg.Peers, rcfg.NoSync = t.TempDir(), c.Names(), true
	rcfg.TickInterval = 10 * time.Millisecond
	f, err := jobs.New(jobsCfg(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	rf, err := consensus.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := election.New(election.Config{Elector: election.RaftElector})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []actors.Factory{rf, ef, f} {
		if err := c.Start(f); err != nil {
			t.Fatal(err)
		}
	}
	actortest.Eventually(t, jobstest.Failover, "the jobs protocols follow the raft leader", func() bool {
		l := stats(t, c.Node("node-1")).Leader
		for _, n := range c.Nodes() {
			if s := stats(t, n); s.Leader == "" || s.Leader != l {
				return false
			}
		}
		return true
	})
	script := readScript(t, "squares.star")
	input := squaresInput(12, 10)
	want := reference(t, script, input, 4)

	minority := c.Names()[:2]
	c.Partition(minority)
	// Submitted once the minority's leader (if it led) stepped down:
	// before, it might run the job on its side.
	actortest.Eventually(t, jobstest.Failover, "the minority follows no leader", func() bool {
		return stats(t, c.Node(minority[0])).Leader == "" && stats(t, c.Node(minority[1])).Leader == ""
	})
	id := submit(t, c.Node("node-1"), script, input, 4)
	st := awaitWaiting(t, c.Node("node-1"), id,
		"no quorum: 2 of 5 voters reachable (node-1, node-2), a majority is 3; no leader can be elected until more are back")
	if st.State != jobs.Pending {
		t.Errorf("a job with no quorum: %+v, want pending", st)
	}

	c.Hub.Heal()
	// Membership merges the sides (its reconnect loop) before the job's
	// contact sees the leader live: allow as long as the partition test.
	st = await(t, c.Node("node-1"), id, 60*time.Second)
	mustSucceed(t, st, want)
	if st.Waiting != "" {
		t.Errorf("a job that ended still waits: %q", st.Waiting)
	}
}

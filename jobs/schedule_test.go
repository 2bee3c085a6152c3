package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/jobs/jobstest"
	pb "github.com/troupe-dev/troupe/messages"
)

// slow wraps a runtime so that every part takes at least delay: a slow
// node.
type slow struct {
	jobs.Runtime
	delay time.Duration
}

func (s slow) Load(ctx context.Context, script []byte) (jobs.Program, error) {
	p, err := s.Runtime.Load(ctx, script)
	return slowProgram{p, s.delay}, err
}

type slowProgram struct {
	jobs.Program
	delay time.Duration
}

func (p slowProgram) Run(ctx context.Context, part []byte) ([]byte, error) {
	t := time.NewTimer(p.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return p.Program.Run(ctx, part)
}

// startEach starts membership, Bully and jobs on n sim nodes, node i with
// the jobs configuration cfg(i), and waits until every node follows node-n.
func startEach(t *testing.T, n int, cfg func(i int) jobs.Config) *cluster.Cluster {
	t.Helper()
	c := clustertest.NewCluster(t, n, cluster.Membership(jobstest.Swim), cluster.NodeConfig(func(_ int, c *actors.Config) {
		c.Reliable.RTO = 20 * time.Millisecond
		c.Reliable.MaxRTO = 100 * time.Millisecond
	}))
	ef, err := election.New(election.Config{Bully: jobstest.Bully})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ef); err != nil {
		t.Fatal(err)
	}
	for i, node := range c.Nodes() {
		f, err := jobs.New(cfg(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := node.Start(f); err != nil {
			t.Fatal(err)
		}
	}
	jobstest.Follow(t, c, c.Names(), c.Names()[n-1])
	return c
}

// A node that does not finish its part does not hold the job back: the
// others pull the rest of the parts, and a backup copy (or, if the node is
// taken for failed, a reassignment) runs the part it holds. node-1 is stuck until the job has ended, so the job can only
// succeed without it; no timing is asserted.
func TestSlowNodeDoesNotHoldTheJobBack(t *testing.T) {
	star, err := jobs.Starlark(jobs.StarlarkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	c := startEach(t, 5, func(i int) jobs.Config {
		rt := jobs.Runtime(slow{star, 20 * time.Millisecond})
		if i == 0 {
			rt = stuck{star, release}
		}
		return jobsCfg(t, func(cfg *jobs.Config) { cfg.Runtimes = []jobs.Runtime{rt} })
	})
	// Registered after the cluster's own cleanup, so it runs first: the
	// stuck part ends before the nodes stop.
	t.Cleanup(func() { close(release) })
	script := readScript(t, "squares.star")
	input := squaresInput(40, 1)
	want := reference(t, script, input, 40)
	id := submit(t, c.Node("node-2"), script, input, 40)
	st := await(t, c.Node("node-2"), id, 60*time.Second)
	mustSucceed(t, st, want)
	// node-1 held a part (its slot's credit took one at the start), never
	// finished one, and has it cancelled once a backup copy's result came
	// in; the job succeeded all the same.
	actortest.Eventually(t, 10*time.Second, "node-1's stuck part cancelled", func() bool {
		return stats(t, c.Node("node-1")).Cancelled > 0
	})
	if s1 := stats(t, c.Node("node-1")); s1.PartsSent != 0 {
		t.Errorf("the stuck node sent %d results (%+v)", s1.PartsSent, s1)
	}
	// Usually a backup copy ran node-1's part; on a loaded machine the
	// leader may also have taken node-1 for failed and queued the part
	// again. Either way the job did not wait for node-1.
	t.Logf("backups at the leader: %d", stats(t, c.Node("node-5")).Backups)
}

// stuck is a runtime whose parts never finish until release is closed.
type stuck struct {
	jobs.Runtime
	release <-chan struct{}
}

func (s stuck) Load(ctx context.Context, script []byte) (jobs.Program, error) {
	p, err := s.Runtime.Load(ctx, script)
	return stuckProgram{p, s.release}, err
}

type stuckProgram struct {
	jobs.Program
	release <-chan struct{}
}

func (p stuckProgram) Run(ctx context.Context, _ []byte) ([]byte, error) {
	select {
	case <-p.release:
		return nil, errors.New("released at the end of the test")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// impostorCluster starts three nodes with membership and Bully, an
// impostor of the jobs protocol on node-1, which the test plays, and the
// jobs protocol (jobsCfg with mod) on node-2 and node-3, both following
// node-3 as their leader.
func impostorCluster(t *testing.T, mod func(*jobs.Config)) (*cluster.Cluster, *actortest.Impostor) {
	t.Helper()
	c := clustertest.NewCluster(t, 3, cluster.Membership(jobstest.Swim))
	ef, err := election.New(election.Config{Bully: jobstest.Bully})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ef); err != nil {
		t.Fatal(err)
	}
	impostor := actortest.NewImpostor(jobs.Name)
	if err := c.Node("node-1").Start(impostor.Factory()); err != nil {
		t.Fatal(err)
	}
	f, err := jobs.New(jobsCfg(t, mod))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []actors.NodeName{"node-2", "node-3"} {
		if err := c.Node(n).Start(f); err != nil {
			t.Fatal(err)
		}
	}
	jobstest.Follow(t, c, []actors.NodeName{"node-2", "node-3"}, "node-3")
	return c, impostor
}

// A worker ignores the assignments of a leader older than the one it
// follows, and obeys a newer one, unless the assignment was made before
// the worker's latest report (WorkRequest.report): that report told the
// leader the part is not held here.
func TestWorkerIgnoresStaleLeaders(t *testing.T) {
	c, impostor := impostorCluster(t, nil)
	worker := c.Node("node-2")
	part := func(term uint64, part uint32, report uint64) *pb.PartAssign {
		return &pb.PartAssign{Id: "node-1.x.1", Term: term, Contact: "node-1", Part: part, Report: report,
			Data: []byte(`{"xs": [2], "spin": 0}`), Runtime: jobs.StarlarkName, Script: readScript(t, "squares.star")}
	}
	// handled sends m and waits until the worker ran or dropped it; it
	// reports whether it ran.
	handled := func(m *pb.PartAssign) bool {
		t.Helper()
		before := stats(t, worker)
		impostor.Send(t, c.Node("node-1"), "node-2", m, true)
		actortest.Eventually(t, 5*time.Second, "the part ran or was dropped", func() bool {
			s := stats(t, worker)
			return s.PartsRun > before.PartsRun || s.Dropped > before.Dropped
		})
		return stats(t, worker).PartsRun > before.PartsRun
	}
	// The stale leaders' parts go first on the one reliable stream, so they
	// were handled before the newer leader's.
	s := stats(t, worker)
	impostor.Send(t, c.Node("node-1"), "node-2", part(s.Term-1, 0, s.Report), true)
	impostor.Send(t, c.Node("node-1"), "node-2", part(s.Term, 1, s.Report), true)
	// A newer leader's part with the worker's latest report runs. The
	// worker may report again meanwhile (the leader's Restarted can come
	// after the cluster follows it): then the part is dropped, and sent
	// again with the new number.
	ran := false
	for k := uint32(2); !ran && k < 10; k++ {
		s := stats(t, worker)
		ran = handled(part(s.Term+1, k, s.Report))
	}
	if !ran {
		t.Fatal("no newer leader's part ran")
	}
	s = stats(t, worker)
	if handled(part(s.Term+1, 10, s.Report-1)) {
		t.Error("a part assigned before the worker's latest report ran")
	}
	if s := stats(t, worker); s.PartsRun != 1 {
		t.Errorf("node-2 ran %d parts, want only the newer leader's", s.PartsRun)
	}
}

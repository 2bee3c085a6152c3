package jobs_test

import (
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/jobs"
)

// idleCost is what the jobs protocol of every node did over a stretch of
// time: timer firings and network messages sent (acknowledgements
// included).
type idleCost struct{ timers, msgs int64 }

func jobsCost(c *cluster.Cluster) idleCost {
	var s idleCost
	for _, n := range c.Nodes() {
		ps := n.Stats().Protocols[jobs.Name]
		s.timers += ps.Timers
		s.msgs += ps.Network().MsgsOut
	}
	return s
}

// An idle jobs protocol is idle: with no job anywhere, no node's jobs
// protocol fires a timer or sends a message; a job wakes the tick where
// there is work (the leader, which schedules it; the contact while it
// waits for a leader), and once the job ended the protocol is idle again.
// Virtual time: the idle stretches cost no wall time.
func TestIdleProtocolDoesNotTick(t *testing.T) { actortest.Virtual(t, testIdleProtocolDoesNotTick) }

func testIdleProtocolDoesNotTick(t *testing.T) {
	const n, idle = 5, 10 * time.Second
	c := newCluster(t, n, inProcessCfg(t, nil))
	settle := func() {
		// The starting protocols' Restarted and the leader's reports and
		// their acknowledgements are on their way; let them land.
		time.Sleep(2 * time.Second)
	}
	settle()
	before := jobsCost(c)
	time.Sleep(idle)
	after := jobsCost(c)
	t.Logf("idle, before any job: %.2f timer firings and %.2f messages per node per second",
		float64(after.timers-before.timers)/n/idle.Seconds(), float64(after.msgs-before.msgs)/n/idle.Seconds())
	if after != before {
		t.Errorf("%d nodes with no job fired %d timers and sent %d messages in %v; want none",
			n, after.timers-before.timers, after.msgs-before.msgs, idle)
	}

	id := submit(t, c.Node("node-1"), readScript(t, "squares.star"), squaresInput(20, 10), 10)
	st := await(t, c.Node("node-1"), id, 30*time.Second)
	mustSucceed(t, st, reference(t, readScript(t, "squares.star"), squaresInput(20, 10), 10))
	busy := jobsCost(c)
	if busy.msgs == after.msgs {
		t.Errorf("the job's parts went nowhere: no jobs message sent")
	}

	settle()
	before = jobsCost(c)
	time.Sleep(idle)
	after = jobsCost(c)
	t.Logf("idle, after a job: %.2f timer firings and %.2f messages per node per second",
		float64(after.timers-before.timers)/n/idle.Seconds(), float64(after.msgs-before.msgs)/n/idle.Seconds())
	if after != before {
		t.Errorf("after the job ended, %d nodes fired %d timers and sent %d messages in %v; want none",
			n, after.timers-before.timers, after.msgs-before.msgs, idle)
	}
}

// inProcessCfg runs Starlark in the test's process: child processes do
// not run on virtual time.
func inProcessCfg(t *testing.T, mod func(*jobs.Config)) jobs.Config {
	t.Helper()
	return jobsCfg(t, func(cfg *jobs.Config) {
		rt, err := jobs.Starlark(jobs.StarlarkConfig{InProcess: true})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Runtimes = []jobs.Runtime{rt}
		if mod != nil {
			mod(cfg)
		}
	})
}

package jobs_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/jobs"
)

// A status request with a wait is a long poll: at the contact and through
// another node it is answered when the job ends, not before; one whose
// wait is over first gets the job as it is; and while it waits, nobody
// polls: no jobs message crosses the network.
func TestWaitJobAnswersWhenTheJobEnds(t *testing.T) {
	actortest.Virtual(t, testWaitJobAnswersWhenTheJobEnds)
}

func testWaitJobAnswersWhenTheJobEnds(t *testing.T) {
	g := &gated{open: make(chan struct{}), reports: 1}
	c := newCluster(t, 3, jobsCfg(t, func(cfg *jobs.Config) {
		cfg.Runtimes, cfg.Prefetch, cfg.Backup = []jobs.Runtime{g}, -1, -1
	}))
	id := submit2(t, c.Node("node-1"), "gated", []byte("gated"), `null`, 3)
	actortest.Eventually(t, 10*time.Second, "every part running", func() bool {
		return status(t, c.Node("node-1"), id).Progress == 0.5
	})

	// A wait that is over before the job ends.
	st, err := jobs.WaitJob(context.Background(), c.Node("node-2"), id, 2*time.Second)
	if err != nil || st.State != jobs.Running {
		t.Fatalf("a 2s wait on a running job: %s, %v; want it running", st.State, err)
	}

	type answer struct {
		st  jobs.Status
		err error
	}
	at := map[actors.NodeName]chan answer{"node-1": make(chan answer, 1), "node-2": make(chan answer, 1)}
	for name, ch := range at {
		go func() {
			st, err := jobs.WaitJob(context.Background(), c.Node(name), id, 50*time.Second)
			ch <- answer{st, err}
		}()
	}
	time.Sleep(10 * time.Second)
	synctest.Wait()
	before := jobsCost(c)
	time.Sleep(10 * time.Second)
	synctest.Wait()
	if after := jobsCost(c); after.msgs != before.msgs {
		t.Errorf("while two callers waited for the job, the jobs protocols sent %d messages; want none", after.msgs-before.msgs)
	}
	for name, ch := range at {
		select {
		case a := <-ch:
			t.Fatalf("the wait through %s answered before the job ended: %+v, %v", name, a.st, a.err)
		default:
		}
	}
	close(g.open)
	for name, ch := range at {
		a := actortest.Receive(t, ch, 30*time.Second, "the answer through "+string(name))
		if a.err != nil || a.st.State != jobs.Succeeded || string(a.st.Result) != "3" {
			t.Errorf("through %s: %+v, %v; want the job succeeded with 3", name, a.st, a.err)
		}
	}
}

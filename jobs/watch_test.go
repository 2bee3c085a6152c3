package jobs_test

import (
	"context"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/jobs"
	pb "github.com/troupe-dev/troupe/messages"
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

// Long polls are bounded: a member that asks for a job's status with a
// wait over and over gets at most 1000 answers held (the others at once),
// a wait beyond a minute is cut to one, and the held answers go when the
// job ends.
func TestWaitJobHoldsBoundedAnswers(t *testing.T) {
	actortest.Virtual(t, testWaitJobHoldsBoundedAnswers)
}

func testWaitJobHoldsBoundedAnswers(t *testing.T) {
	g := &gated{open: make(chan struct{}), reports: 1}
	c, impostor := impostorCluster(t, func(cfg *jobs.Config) { cfg.Runtimes, cfg.Backup = []jobs.Runtime{g}, -1 })
	contact := c.Node("node-2")
	id := submit2(t, contact, "gated", []byte("gated"), `null`, 2)
	for i := range 1200 {
		impostor.Send(t, c.Node("node-1"), "node-2", &pb.JobQuery{Request: uint64(i + 1), Id: id, WaitMillis: math.MaxUint32}, true)
	}
	actortest.Eventually(t, 10*time.Second, "the queries handled", func() bool { return stats(t, contact).Watches == 1000 })
	time.Sleep(2 * time.Minute) // every held wait is over: cut to a minute
	synctest.Wait()
	if n := stats(t, contact).Watches; n != 0 {
		t.Errorf("%d answers still held two minutes after waits of at most a minute", n)
	}
	for i := range 10 {
		impostor.Send(t, c.Node("node-1"), "node-2", &pb.JobQuery{Request: uint64(2000 + i), Id: id, WaitMillis: 30000}, true)
	}
	actortest.Eventually(t, 10*time.Second, "ten answers held", func() bool { return stats(t, contact).Watches == 10 })
	close(g.open)
	await(t, contact, id, 10*time.Second)
	if n := stats(t, contact).Watches; n != 0 {
		t.Errorf("%d answers still held after the job ended", n)
	}
}

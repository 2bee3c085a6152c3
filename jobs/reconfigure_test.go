package jobs_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/jobs"
)

// Slots change at run time: more slots start more parts at once; fewer
// slots hold the worker to the new capacity once its running parts end.
// An invalid configuration is refused and the old one kept.
func TestReconfigureSlots(t *testing.T) {
	cfg := longCfg(t) // Slots 1, Prefetch 1
	c := newCluster(t, 1, cfg)
	n := c.Node("node-1")
	id := submit(t, n, []byte(longJob), `null`, 8)
	actortest.Eventually(t, 10*time.Second, "1 part running, 1 waiting", func() bool {
		s := stats(t, n)
		return s.Running == 1 && s.Waiting == 1 && s.Queued == 6
	})

	bad := cfg
	bad.Slots = -1
	err := jobs.Reconfigure(context.Background(), n, bad)
	if !errors.Is(err, actors.ErrReconfigureRefused) || !strings.Contains(err.Error(), "Slots is -1") {
		t.Fatalf("Slots -1: %v, want a refusal naming Slots", err)
	}

	more := cfg
	more.Slots = 3
	if err := jobs.Reconfigure(context.Background(), n, more); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 10*time.Second, "3 parts running, 1 waiting after Slots 3", func() bool {
		s := stats(t, n)
		return s.Running == 3 && s.Waiting == 1 && s.Queued == 4
	})

	// Back to one slot: the three running parts go on (they are not
	// preempted); once they stop, the worker takes only 1 + 1 again.
	if err := jobs.Reconfigure(context.Background(), n, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.CancelJob(context.Background(), n, id, ""); err != nil {
		t.Fatal(err)
	}
	awaitIdle(t, c, c.Names(), 30*time.Second)
	submit(t, n, []byte(longJob), `null`, 8)
	actortest.Eventually(t, 10*time.Second, "1 part running, 1 waiting after Slots 1", func() bool {
		s := stats(t, n)
		return s.Running == 1 && s.Waiting == 1 && s.Queued == 6
	})
	if s := n.Stats().Protocols[jobs.Name]; s.Reconfigured != 2 {
		t.Errorf("Reconfigured = %d, want 2", s.Reconfigured)
	}
}

// gatedJob's parts block in http_get on a test server until the test
// opens the gate; each part's result is its number.
const gatedJob = `
def split(input, n):
    return [{"url": input + "/" + str(i), "n": i} for i in range(n)]

def run(part):
    http_get(part["url"])
    return part["n"]

def merge(results):
    total = 0
    for r in results:
        total += r
    return total
`

// gate is the test server of gatedJob: a request waits until open is
// closed (or the part is cancelled).
func gate(t *testing.T) (url string, allow []string, open func()) {
	t.Helper()
	ch := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-ch:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(ch) }) })
	return srv.URL, []string{srv.Listener.Addr().String()}, func() { once.Do(func() { close(ch) }) }
}

// gatedCluster starts 3 nodes with backups off, submits gatedJob in 6
// parts through contact, and waits until each worker runs one part and
// holds another (Slots 1, Prefetch 1). The parts end when open is called.
func gatedCluster(t *testing.T, contact actors.NodeName) (c *cluster.Cluster, id string, open func()) {
	t.Helper()
	url, allow, open := gate(t)
	rt, err := jobs.Starlark(jobs.StarlarkConfig{HTTPAllow: allow})
	if err != nil {
		t.Fatal(err)
	}
	c = newCluster(t, 3, jobsCfg(t, func(cfg *jobs.Config) {
		cfg.Backup = -1
		cfg.Runtimes = []jobs.Runtime{rt}
	}))
	id = submit(t, c.Node(contact), []byte(gatedJob), `"`+url+`"`, 6)
	actortest.Eventually(t, 20*time.Second, "every worker runs 1 part and holds 1", func() bool {
		for _, n := range c.Nodes() {
			if s := stats(t, n); s.Running != 1 || s.Waiting != 1 {
				return false
			}
		}
		return true
	})
	return c, id, open
}

// A worker that drains hands its parts back to the leader, which queues
// them first and assigns them to the other workers as they free up: the
// job ends with every part's result although the drained node stays a
// live member (without the hand-back, the leader would count its parts as
// running forever: backups are off).
func TestDrainHandsPartsBack(t *testing.T) {
	c, id, open := gatedCluster(t, "node-2")

	d, err := actors.Call(context.Background(), c.Node("node-1"), jobs.Name, jobs.DrainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if d.HandedBack != 2 || d.Leader != "node-3" {
		t.Fatalf("drain: %+v, want 2 parts handed back to node-3", d)
	}
	actortest.Eventually(t, 10*time.Second, "the leader queues the 2 parts again", func() bool {
		s := stats(t, c.Node("node-3"))
		return s.Queued == 2 && s.Held == 4
	})
	open()
	st := await(t, c.Node("node-2"), id, 30*time.Second)
	mustSucceed(t, st, "15") // 0+1+...+5
	// A cancelled part holds its slot until its goroutine returns.
	actortest.Eventually(t, 10*time.Second, "the drained node's cancelled parts return", func() bool {
		s := stats(t, c.Node("node-1"))
		return s.Running+s.Waiting == 0
	})
	s := stats(t, c.Node("node-1"))
	if s.PartsSent != 0 || s.HandedBack != 2 {
		t.Errorf("the drained node worked on: %+v", s)
	}
}

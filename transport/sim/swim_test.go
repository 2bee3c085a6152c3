package sim_test

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/transport/sim"
)

// These tests run real memberlist instances over the hub, with the timings
// of memberlist's LAN preset shortened 1s/probeInterval = 10 times.
// memberlist runs on real time and every test here asserts exactly who was
// declared dead, so the probe timeout (half the interval) must outlast the
// scheduling stalls of a loaded two-core CI machine running several test
// binaries at once, under the race detector too: with 25 ms probes a
// starved node was rightly suspected by its own side of a partition.
const probeInterval = 100 * time.Millisecond

// watcher records the membership events of one memberlist node.
// memberlist calls it from its own goroutines.
type watcher struct {
	mu   sync.Mutex
	left []string // nodes declared dead or gone, in order
}

func (w *watcher) NotifyJoin(*memberlist.Node)   {}
func (w *watcher) NotifyUpdate(*memberlist.Node) {}
func (w *watcher) NotifyLeave(n *memberlist.Node) {
	w.mu.Lock()
	w.left = append(w.left, n.Name)
	w.mu.Unlock()
}

func (w *watcher) leaves() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.left)
}

// swimNode is one memberlist instance on the hub.
type swimNode struct {
	log   *logBuffer
	name  string
	tr    *sim.MemberlistTransport
	ml    *memberlist.Memberlist
	w     *watcher
	probe *probeCounter
}

// probeCounter counts the probes of one node that an ack answered.
type probeCounter struct {
	mu sync.Mutex
	n  int
}

func (p *probeCounter) AckPayload() []byte { return nil }
func (p *probeCounter) NotifyPingComplete(*memberlist.Node, time.Duration, []byte) {
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
}

func (p *probeCounter) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// swimCluster starts n memberlist nodes named n1..nn on h, joined through
// n1, and waits until every node sees all of them. It shuts them down and
// checks for leaked goroutines when the test ends.
func swimCluster(t *testing.T, h *sim.Hub, n int) []*swimNode {
	t.Helper()
	return swimClusterEvery(t, h, n, probeInterval)
}

// swimClusterEvery is swimCluster with the LAN preset scaled to interval.
func swimClusterEvery(t *testing.T, h *sim.Hub, n int, interval time.Duration) []*swimNode {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	nodes := make([]*swimNode, n)
	t.Cleanup(func() {
		for _, sn := range nodes {
			if sn != nil && sn.ml != nil {
				_ = sn.ml.Shutdown()
			}
		}
		_ = h.Close()
		// memberlist's Shutdown does not wait for a probe under way
		// (probeNode waits out its timeouts): give one a few seconds to
		// end on a loaded host before calling what is left a leak
		// (goleak's own retries last about a second).
		deadline := time.Now().Add(10 * time.Second)
		for goleak.Find(ignore) != nil && time.Now().Before(deadline) {
			<-time.After(20 * time.Millisecond) // polling a condition with a deadline
		}
		goleak.VerifyNone(t, ignore)
	})
	for i := range nodes {
		name := fmt.Sprintf("n%d", i+1)
		tr, err := h.Memberlist(name)
		if err != nil {
			t.Fatal(err)
		}
		sn := &swimNode{name: name, tr: tr, w: &watcher{}, probe: &probeCounter{}}
		// The LAN preset (3 indirect checks, RetransmitMult 4) scaled
		// down by 1s/interval; the local preset's single indirect
		// check and RetransmitMult 2 make false deaths likely at 10%
		// loss when the race detector slows everything down.
		c := memberlist.DefaultLANConfig()
		c.Name = name
		c.Transport = tr
		c.Events = sn.w
		c.Ping = sn.probe
		sn.log = &logBuffer{}
		c.LogOutput = sn.log
		c.ProbeInterval = interval
		c.ProbeTimeout = interval / 2
		c.GossipInterval = interval / 5
		c.PushPullInterval = 8 * interval
		c.TCPTimeout = 8 * interval
		c.GossipToTheDeadTime = 400 * interval // long enough for TestSwimPartitionAndHeal
		if sn.ml, err = memberlist.Create(c); err != nil {
			t.Fatal(err)
		}
		nodes[i] = sn
	}
	seed := nodes[0].tr.Addr()
	for _, sn := range nodes[1:] {
		if _, err := sn.ml.Join([]string{seed}); err != nil {
			t.Fatalf("%s joining through %s: %v", sn.name, seed, err)
		}
	}
	waitMembers(t, nodes, n, "every node sees every node")
	return nodes
}

// waitMembers waits until each of nodes counts want live members.
func waitMembers(t *testing.T, nodes []*swimNode, want int, what string) {
	t.Helper()
	err := actortest.WaitFor(10*time.Second, func() bool {
		for _, sn := range nodes {
			if sn.ml.NumMembers() != want {
				return false
			}
		}
		return true
	})
	if err != nil {
		for _, sn := range nodes {
			t.Logf("%s sees %d: %v", sn.name, sn.ml.NumMembers(), names(sn.ml.Members()))
		}
		t.Fatalf("%s (%d members): %v", what, want, err)
	}
}

func names(ms []*memberlist.Node) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	slices.Sort(out)
	return out
}

func TestSwimJoinsThroughOneSeed(t *testing.T) {
	h := newHub(t, sim.Config{Seed: 1})
	nodes := swimCluster(t, h, 5)
	for _, sn := range nodes {
		if got := names(sn.ml.Members()); !slices.Equal(got, []string{"n1", "n2", "n3", "n4", "n5"}) {
			t.Fatalf("%s sees %v", sn.name, got)
		}
	}
	tot := h.Stats().Total(sim.Protocol(sim.MemberlistProtocol))
	streams := h.Stats().Total(func(k sim.Key) bool { return k.Type == sim.StreamType })
	if tot.Delivered == 0 || streams.SentBytes == 0 {
		t.Fatalf("SWIM did not run over the hub: %+v, streams %+v", tot, streams)
	}
}

func TestSwimToleratesLoss(t *testing.T) {
	h := newHub(t, sim.Config{Seed: 2})
	nodes := swimCluster(t, h, 5)
	if err := h.SetFaults(sim.Faults{Loss: 0.1}); err != nil {
		t.Fatal(err)
	}
	const rounds = 60 // protocol periods, each node probing once per period
	start := time.Now()
	actortest.Eventually(t, 30*time.Second, "60 probe rounds", func() bool {
		for _, sn := range nodes {
			if sn.probe.count() < rounds*8/10 { // about 19% of direct probes lose the ping or the ack
				return false
			}
		}
		return time.Since(start) >= rounds*probeInterval
	})
	for _, sn := range nodes {
		if l := sn.w.leaves(); len(l) > 0 {
			t.Logf("stats %+v", h.Stats().Total(nil))
			t.Logf("%s", sn.log.String())
			t.Fatalf("%s declared live nodes dead at 10%% loss: %v", sn.name, l)
		}
	}
	lossy := h.Stats().Total(sim.Protocol(sim.MemberlistProtocol))
	if lossy.Lost == 0 {
		t.Fatal("no packet was lost")
	}
	t.Logf("%v, %d packets sent, %d lost", time.Since(start).Round(time.Millisecond), lossy.Sent, lossy.Lost)
}

func TestSwimPartitionAndHeal(t *testing.T) {
	h := newHub(t, sim.Config{Seed: 3})
	nodes := swimCluster(t, h, 5)
	left, right := nodes[:2], nodes[2:]
	h.Partition([]string{"n1", "n2"}, []string{"n3", "n4", "n5"})
	waitMembers(t, left, 2, "{n1,n2} sees {n3,n4,n5} dead")
	waitMembers(t, right, 3, "{n3,n4,n5} sees {n1,n2} dead")
	for _, sn := range left {
		if l := sn.w.leaves(); !slices.Equal(sortedSet(l), []string{"n3", "n4", "n5"}) {
			t.Fatalf("%s saw leave %v", sn.name, l)
		}
	}
	for _, sn := range right {
		if l := sn.w.leaves(); !slices.Equal(sortedSet(l), []string{"n1", "n2"}) {
			t.Fatalf("%s saw leave %v", sn.name, l)
		}
	}

	h.Heal()
	// memberlist neither probes nor push-pulls with nodes it holds dead,
	// so the sides stay apart until one of them joins the other again
	// (what an operator's or the membership layer's rejoin does). One
	// push-pull suffices: each side learns the other holds it dead,
	// refutes with a higher incarnation, and gossips that to the nodes
	// it holds dead too.
	seed, _ := h.MemberlistAddr("n3")
	if _, err := nodes[0].ml.Join([]string{seed}); err != nil {
		t.Fatalf("n1 rejoining through n3: %v", err)
	}
	waitMembers(t, nodes, 5, "the sides merge after healing")
}

func TestSwimDetectsShutDownTransport(t *testing.T) {
	h := newHub(t, sim.Config{Seed: 4})
	nodes := swimCluster(t, h, 5)
	if err := nodes[4].tr.Shutdown(); err != nil { // n5 crashes: its memberlist runs on, cut off
		t.Fatal(err)
	}
	waitMembers(t, nodes[:4], 4, "the others declare n5 failed")
	for _, sn := range nodes[:4] {
		if l := sn.w.leaves(); !slices.Equal(l, []string{"n5"}) {
			t.Fatalf("%s saw leave %v", sn.name, l)
		}
	}
}

func sortedSet(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

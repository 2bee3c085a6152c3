package remote_test

import (
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
	"github.com/troupe-dev/troupe/transport/remote"
)

// dials counts the dials of a network's nodes, by "from→address".
type dials struct {
	mu sync.Mutex
	n  map[string]int
}

func countDials(nets ...*remote.Network) *dials {
	d := &dials{n: map[string]int{}}
	for _, net := range nets {
		remote.SetDialHook(net, func(from, addr string) {
			d.mu.Lock()
			d.n[from+"→"+addr]++
			d.mu.Unlock()
		})
	}
	return d
}

func (d *dials) of(from, addr string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[from+"→"+addr]
}

// attachCounting attaches a node that notes the sender of each batch it
// receives.
func attachCounting(t testing.TB, net *remote.Network, name string) *node {
	t.Helper()
	n := &node{sys: actor.NewActorSystem()}
	ep, err := net.Attach(transport.Attachment{Node: name, System: n.sys, DeliverBatch: func(from, _ string, _ []byte) {
		n.mu.Lock()
		n.got = append(n.got, &messages.Envelope{From: from})
		n.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	n.ep = ep
	t.Cleanup(func() { _ = ep.Close(); n.sys.Shutdown() })
	return n
}

// heardFrom reports whether n received a batch from node from.
func (n *node) heardFrom(from string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, env := range n.got {
		if env != nil && env.From == from {
			return true
		}
	}
	return false
}

// separate attaches each name to a Network of its own, as nodes in
// separate processes are, each knowing the others' addresses.
func separate(t testing.TB, names ...string) (nets []*remote.Network, nodes []*node) {
	t.Helper()
	actortest.SkipRemoteUnderRace(t)
	for _, name := range names {
		net, err := remote.New(remote.Config{})
		if err != nil {
			t.Fatal(err)
		}
		nets = append(nets, net)
		nodes = append(nodes, attachCounting(t, net, name))
	}
	for i, net := range nets {
		for j, name := range names {
			if i != j {
				if err := net.SetPeer(name, nodes[j].ep.Address()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return nets, nodes
}

// chatter sends a ping from each of from to each of to every few
// milliseconds until stop is closed; errors (ErrUnknownNode once a peer is
// removed) are ignored.
func chatter(from []*node, names []string, to []string, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i, n := range from {
		wg.Go(func() {
			for {
				for _, dst := range to {
					env := &messages.Envelope{From: names[i], To: dst, Protocol: "p"}
					_ = transport.MarshalPayload(env, &messages.Ping{N: 1})
					_, _ = n.ep.Send(env)
				}
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		})
	}
	return &wg
}

// TestStopWithADeadPeer: of three nodes that talk, one dies without a
// goodbye; the other two, still sending to it, stop (Close returns). It
// used to take 10 s: protoactor's endpoint writer redialled the dead peer
// five times, sleeping 2 s after each, and its shutdown waited.
func TestStopWithADeadPeer(t *testing.T) {
	names := []string{"a", "b", "c"}
	_, nodes := separate(t, names...)
	stop := make(chan struct{})
	wg := chatter(nodes[:2], names, names, stop)
	actortest.Eventually(t, 10*time.Second, "c hears a and b", func() bool { return nodes[2].heardFrom("a") && nodes[2].heardFrom("b") })
	dead := nodes[2].ep.Address()
	remote.Kill(nodes[2].ep)
	actortest.Eventually(t, 20*time.Second, "a and b find c down", func() bool {
		return remote.Down(nodes[0].ep, dead) && remote.Down(nodes[1].ep, dead)
	})
	close(stop)
	wg.Wait()
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		for _, n := range nodes {
			_ = n.ep.Close()
		}
		close(closed)
	}()
	select { // a hang detector, not a performance bound
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("closing the nodes did not return within 20 s")
	}
	t.Logf("closing three nodes, one dead, took %v", time.Since(start))
}

// TestFailedMemberIsNotRedialled: a node keeps probing a peer whose
// connection broke, and stops dialling it once membership says it failed
// (RemovePeer), however much is sent to it.
func TestFailedMemberIsNotRedialled(t *testing.T) {
	names := []string{"a", "c"}
	nets, nodes := separate(t, names...)
	d := countDials(nets[0])
	stop := make(chan struct{})
	defer close(stop)
	chatter(nodes[:1], names, []string{"c"}, stop)
	actortest.Eventually(t, 10*time.Second, "c hears a", func() bool { return nodes[1].count() > 0 })
	dead := nodes[1].ep.Address()
	remote.Kill(nodes[1].ep)
	before := d.of("a", dead)
	actortest.Eventually(t, 20*time.Second, "a redials c while it is a member", func() bool { return d.of("a", dead) >= before+3 })
	if !remote.Down(nodes[0].ep, dead) {
		t.Fatal("a sends to c, which it cannot reach, as to a live peer")
	}
	nets[0].RemovePeer("c") // membership: c failed
	actortest.Eventually(t, 20*time.Second, "a's probe of c ends", func() bool { return !remote.Probing(nodes[0].ep, dead) })
	after := d.of("a", dead)
	// A claim of absence needs a window: for a second a keeps sending to c
	// (refused: unknown node) and must not dial it.
	time.Sleep(time.Second)
	if n := d.of("a", dead) - after; n != 0 {
		t.Errorf("a dialled c %d times after c failed", n)
	}
	t.Logf("a dialled c %d times while c was a member and dead, none after it failed", after-before)
}

// TestPeerBackAtItsAddressIsReached: a peer that was down and comes back
// at the same address (SetPeer after RemovePeer: it rejoined) receives
// again.
func TestPeerBackAtItsAddressIsReached(t *testing.T) {
	names := []string{"a", "c"}
	nets, nodes := separate(t, names...)
	stop := make(chan struct{})
	defer close(stop)
	chatter(nodes[:1], names, []string{"c"}, stop)
	actortest.Eventually(t, 10*time.Second, "c hears a", func() bool { return nodes[1].count() > 0 })
	addr := nodes[1].ep.Address()
	_ = nodes[1].ep.Close()
	nets[0].RemovePeer("c")
	actortest.Eventually(t, 20*time.Second, "a holds c down", func() bool { return remote.Down(nodes[0].ep, addr) })
	c2, err := remote.New(remote.Config{Bind: addr})
	if err != nil {
		t.Fatal(err)
	}
	back := attachCounting(t, c2, "c")
	if err := nets[0].SetPeer("c", addr); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 20*time.Second, "c, back at its address, hears a", func() bool { return back.count() > 0 })
}

// BenchmarkStopWithADeadPeer measures closing two nodes that were sending
// to a third when it died without a goodbye.
func BenchmarkStopWithADeadPeer(b *testing.B) {
	names := []string{"a", "b", "c"}
	for b.Loop() {
		b.StopTimer()
		_, nodes := separate(b, names...)
		stop := make(chan struct{})
		wg := chatter(nodes[:2], names, names, stop)
		if err := actortest.WaitFor(10*time.Second, func() bool { return nodes[2].heardFrom("a") && nodes[2].heardFrom("b") }); err != nil {
			b.Fatal(err)
		}
		dead := nodes[2].ep.Address()
		remote.Kill(nodes[2].ep)
		if err := actortest.WaitFor(20*time.Second, func() bool {
			return remote.Down(nodes[0].ep, dead) && remote.Down(nodes[1].ep, dead)
		}); err != nil {
			b.Fatalf("a and b find c down: %v", err)
		}
		close(stop)
		wg.Wait()
		b.StartTimer()
		for _, n := range nodes {
			_ = n.ep.Close()
		}
	}
}

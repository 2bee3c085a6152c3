package remote_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
	"github.com/troupe-dev/troupe/transport/remote"
)

type node struct {
	sys     *actor.ActorSystem
	ep      transport.Endpoint
	mu      sync.Mutex
	got     []*messages.Envelope
	refused []error
	batches int // DeliverBatch calls
}

func attach(t *testing.T, net *remote.Network, name string) *node {
	t.Helper()
	n := &node{sys: actor.NewActorSystem()}
	ep, err := net.Attach(transport.Attachment{Node: name, System: n.sys, DeliverBatch: func(from, protocol string, envelopes []byte) {
		n.mu.Lock()
		n.batches++
		n.mu.Unlock()
		for len(envelopes) > 0 {
			e, rest, err := transport.NextEntry(envelopes)
			n.mu.Lock()
			if err != nil {
				n.refused = append(n.refused, err)
				n.mu.Unlock()
				return
			}
			env := e.Env
			if env == nil {
				env = &messages.Envelope{Type: string(e.Type), Payload: e.Payload}
			}
			env.From, env.To, env.Protocol = from, name, protocol
			n.got = append(n.got, env)
			n.mu.Unlock()
			envelopes = rest
		}
	}, Reject: func(err error) {
		n.mu.Lock()
		n.refused = append(n.refused, err)
		n.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	n.ep = ep
	t.Cleanup(func() { _ = ep.Close(); n.sys.Shutdown() })
	return n
}

func ignore(string, string, []byte) {}

// pair attaches nodes a and b to a new Network on loopback (skipped under
// -race: actortest.SkipRemoteUnderRace).
func pair(t *testing.T) (net *remote.Network, a, b *node) {
	t.Helper()
	actortest.SkipRemoteUnderRace(t)
	net, err := remote.New(remote.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return net, attach(t, net, "a"), attach(t, net, "b")
}

func (n *node) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.got)
}

func (n *node) refusals() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.refused)
}

func TestTwoNodesOnLoopback(t *testing.T) {
	net, a, b := pair(t)
	if addr, ok := net.Resolve("b"); !ok || addr != b.ep.Address() || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("b resolves to %q, %v; its endpoint says %q", addr, ok, b.ep.Address())
	}
	for i := range 100 {
		env := &messages.Envelope{From: "a", To: "b", Protocol: "p"}
		_ = transport.MarshalPayload(env, &messages.Ping{N: uint64(i)})
		if _, err := a.ep.Send(env); err != nil {
			t.Fatal(err)
		}
	}
	actortest.Eventually(t, 10*time.Second, "100 envelopes at b", func() bool { return b.count() == 100 })
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, env := range b.got { // one gRPC stream per pair keeps order
		m, err := transport.UnmarshalPayload(env)
		if err != nil || m.(*messages.Ping).N != uint64(i) {
			t.Fatalf("envelope %d: %v %v", i, m, err)
		}
	}
	_, err := a.ep.Send(&messages.Envelope{From: "a", To: "nobody", Protocol: "p", Type: "x.Y"})
	if !errors.Is(err, transport.ErrUnknownNode) {
		t.Fatalf("send to nobody: %v", err)
	}
}

func TestRemoteConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  remote.Config
		want string
	}{
		{remote.Config{Bind: "localhost"}, `Bind "localhost" is not host:port`},
		{remote.Config{Bind: "127.0.0.1:99999"}, `port "99999" must be a number from 0 to 65535`},
		{remote.Config{Advertise: "10.0.0.1:7000"}, "Advertise \"10.0.0.1:7000\" needs a fixed port in Bind"},
		{remote.Config{Peers: map[string]string{"b": "nowhere"}}, `peer b address "nowhere" is not host:port`},
		{remote.Config{Peers: map[string]string{"b c": "h:1"}}, `peer name "b c"`},
	} {
		if _, err := remote.New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): %v; want an error mentioning %q", c.cfg, err, c.want)
		}
	}
	actortest.SkipRemoteUnderRace(t)
	net, _ := remote.New(remote.Config{})
	a := attach(t, net, "a")
	busy, _ := remote.New(remote.Config{Bind: a.ep.Address()})
	_, err := busy.Attach(transport.Attachment{Node: "x", System: actor.NewActorSystem(), DeliverBatch: ignore})
	if err == nil || !strings.Contains(err.Error(), "cannot listen on "+a.ep.Address()) {
		t.Fatalf("attaching on a busy port: %v", err)
	}
	if _, err := net.Attach(transport.Attachment{Node: "a", System: actor.NewActorSystem(), DeliverBatch: ignore}); !errors.Is(err, transport.ErrNameTaken) {
		t.Fatalf("second a: %v", err)
	}
}

// TestNamesTravelInTheSenderPID checks the wire shape: the names of an
// envelope sent to another node travel in protoactor's sender PID and are
// restored on arrival; a sender PID that does not parse, or that contradicts
// the envelope, is refused.
// TestOutboxSendsBatches: what one protocol sends one node between two
// flushes travels as one Batch, in order, best-effort messages and whole
// envelopes alike; a batch to the node itself skips the wire; the inbox
// refuses what is not a well-formed batch for its node.
func TestOutboxSendsBatches(t *testing.T) {
	_, a, b := pair(t)
	o := a.ep.Outbox("p")
	var want []*messages.Envelope
	for i := range 10 {
		m := &messages.Ping{N: uint64(i)}
		env := &messages.Envelope{From: "a", To: "b", Protocol: "p"}
		_ = transport.MarshalPayload(env, m)
		var size int
		var err error
		if i%3 == 0 {
			env.Session, env.Seq = 7, uint64(i+1) // reliable data goes whole
			size, err = o.Send(env)
		} else {
			size, err = o.SendMessage("b", m)
		}
		if err != nil || size == 0 {
			t.Fatalf("send %d: size %d, %v", i, size, err)
		}
		m.N = 99 // encoded at once: changing it now changes nothing
		want = append(want, env)
	}
	if _, err := o.SendMessage("a", &messages.Ping{N: 1}); err != nil {
		t.Fatal(err)
	}
	if b.count() != 0 {
		t.Fatal("b got envelopes before Flush")
	}
	o.Flush()
	actortest.Eventually(t, 10*time.Second, "10 envelopes at b, 1 at a", func() bool { return b.count() == 10 && a.count() == 1 })
	b.mu.Lock()
	for i, got := range b.got {
		if !proto.Equal(got, want[i]) {
			t.Errorf("envelope %d: got %v, want %v", i, got, want[i])
		}
	}
	b.mu.Unlock()
	if _, err := o.SendMessage("nobody", &messages.Ping{}); !errors.Is(err, transport.ErrUnknownNode) {
		t.Errorf("send to nobody: %v", err)
	}

	inboxB := actor.NewPID(b.ep.Address(), "troupe")
	for _, bad := range []any{
		&messages.Batch{Names: []byte("a/c/p"), Envelopes: []byte{1}},   // for another node
		&messages.Batch{Names: []byte("a/b/p q"), Envelopes: []byte{1}}, // bad protocol name
		&messages.Batch{Names: []byte("/b/p"), Envelopes: []byte{1}},    // no sender
		&messages.Batch{Names: []byte("a/b"), Envelopes: []byte{1}},     // no protocol
		&messages.Ping{N: 1}, // not a batch
	} {
		a.sys.Root.Send(inboxB, bad)
	}
	// Bytes that are not entries reach the protocol, which refuses them.
	a.sys.Root.Send(inboxB, &messages.Batch{Names: []byte("a/b/p"), Envelopes: []byte{0x0a, 0x7f, 1}})
	actortest.Eventually(t, 10*time.Second, "6 refusals at b", func() bool { return b.refusals() == 6 })
	if b.count() != 10 {
		t.Errorf("b delivered %d envelopes, want 10", b.count())
	}
}

// TestFlushesInARowArriveInOrder: one message per flush, as a protocol
// sends one per event; what flushes add while protoactor's writer has not
// taken the previous batch joins it (stream.go), and every message arrives
// once, in order.
func TestFlushesInARowArriveInOrder(t *testing.T) {
	_, a, b := pair(t)
	o := a.ep.Outbox("p")
	const n = 3000
	for i := range n {
		if _, err := o.SendMessage("b", &messages.Ping{N: uint64(i)}); err != nil {
			t.Fatal(err)
		}
		o.Flush()
	}
	actortest.Eventually(t, 10*time.Second, "all messages at b", func() bool { return b.count() == n })
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, env := range b.got {
		m, err := transport.UnmarshalPayload(env)
		if err != nil || m.(*messages.Ping).N != uint64(i) {
			t.Fatalf("message %d: %v %v", i, m, err)
		}
	}
	t.Logf("%d flushes arrived in %d batches", n, b.batches)
}

// TestPeerNewsNeverOverridesAttachedNodes: membership feeds the directory
// with news that may be about an earlier run of a name; a node attached to
// the Network is the authority on its own address, and attaching replaces
// a peer entry of its name.
func TestPeerNewsNeverOverridesAttachedNodes(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	c := clustertest.NewCluster(t, 2, cluster.Remote())
	own := c.Node("node-1").Address()
	if err := c.Remote.SetPeer("node-1", "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	c.Remote.RemovePeer("node-1")
	if addr, ok := c.Remote.Resolve("node-1"); !ok || addr != own {
		t.Fatalf("node-1 resolves to %q, %v after peer news; want its own %q", addr, ok, own)
	}
	if err := c.Crash("node-2"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remote.SetPeer("node-2", "127.0.0.1:9"); err != nil { // stale news
		t.Fatal(err)
	}
	n, err := c.Restart("node-2")
	if err != nil {
		t.Fatalf("restarting node-2 over a peer entry of its name: %v", err)
	}
	if addr, _ := c.Remote.Resolve("node-2"); addr != n.Address() {
		t.Fatalf("node-2 resolves to %q; want the restarted node's %q", addr, n.Address())
	}
}

// TestLargeEnvelopesCross: envelopes near the size limit, several to a
// batch and several batches to one gRPC message, all arrive; one over the
// limit is refused at once.
func TestLargeEnvelopesCross(t *testing.T) {
	_, a, b := pair(t)
	o := a.ep.Outbox("p")
	big := &messages.Envelope{From: "a", To: "b", Protocol: "p", Type: "troupe.examples.v1.Ping", Payload: make([]byte, transport.MaxEnvelopeSize-100)}
	for range 3 {
		if _, err := o.Send(big); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5000 {
		if _, err := o.SendMessage("b", &messages.Ping{N: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	o.Flush()
	actortest.Eventually(t, 30*time.Second, "5003 envelopes at b", func() bool { return b.count() == 5003 })
	big.Payload = make([]byte, transport.MaxEnvelopeSize)
	if _, err := o.Send(big); !errors.Is(err, transport.ErrTooLarge) {
		t.Errorf("oversized envelope: %v", err)
	}
}

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
}

func attach(t *testing.T, net *remote.Network, name string) *node {
	t.Helper()
	n := &node{sys: actor.NewActorSystem()}
	ep, err := net.Attach(transport.Attachment{Node: name, System: n.sys, Deliver: func(env *messages.Envelope, size int) {
		if size != transport.Size(env) {
			t.Errorf("delivered size %d, envelope is %d bytes", size, transport.Size(env))
		}
		n.mu.Lock()
		n.got = append(n.got, env)
		n.mu.Unlock()
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
	actortest.SkipRemoteUnderRace(t)
	net, err := remote.New(remote.Config{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := attach(t, net, "a"), attach(t, net, "b")
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
	_, err = a.ep.Send(&messages.Envelope{From: "a", To: "nobody", Protocol: "p", Type: "x.Y"})
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
	_, err := busy.Attach(transport.Attachment{Node: "x", System: actor.NewActorSystem(), Deliver: func(*messages.Envelope, int) {}})
	if err == nil || !strings.Contains(err.Error(), "cannot listen on "+a.ep.Address()) {
		t.Fatalf("attaching on a busy port: %v", err)
	}
	if _, err := net.Attach(transport.Attachment{Node: "a", System: actor.NewActorSystem(), Deliver: func(*messages.Envelope, int) {}}); !errors.Is(err, transport.ErrNameTaken) {
		t.Fatalf("second a: %v", err)
	}
}

// TestNamesTravelInTheSenderPID checks the wire shape: the names of an
// envelope sent to another node travel in protoactor's sender PID and are
// restored on arrival; a sender PID that does not parse, or that contradicts
// the envelope, is refused.
func TestNamesTravelInTheSenderPID(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	net, err := remote.New(remote.Config{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := attach(t, net, "a"), attach(t, net, "b")
	want := &messages.Envelope{From: "a", To: "b", Protocol: "p"}
	_ = transport.MarshalPayload(want, &messages.Ping{N: 7})
	sent := &messages.Envelope{From: "a", To: "b", Protocol: "p", Type: want.Type, Payload: want.Payload}
	size, err := a.ep.Send(sent)
	if err != nil || size != transport.Size(want) {
		t.Fatalf("Send: size %d, %v; want %d", size, err, transport.Size(want))
	}
	if sent.From != "" || sent.Type != "" {
		t.Errorf("the names were sent in the envelope: %v", sent)
	}
	// A node sending to itself skips the wire.
	self := &messages.Envelope{From: "a", To: "a", Protocol: "p", Type: want.Type, Payload: want.Payload}
	if _, err := a.ep.Send(self); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 10*time.Second, "both envelopes", func() bool { return a.count() == 1 && b.count() == 1 })
	b.mu.Lock()
	if got := b.got[0]; !proto.Equal(got, want) {
		t.Errorf("b got %v, want %v", got, want)
	}
	b.mu.Unlock()
	a.mu.Lock()
	if got := a.got[0]; !proto.Equal(got, self) {
		t.Errorf("a got %v, want %v", got, self)
	}
	a.mu.Unlock()

	inboxB := actor.NewPID(b.ep.Address(), "troupe")
	for _, c := range []struct {
		sender string
		env    *messages.Envelope
	}{
		{"no-slashes", &messages.Envelope{Payload: want.Payload}},
		{"a/c/p/" + want.Type, &messages.Envelope{Payload: want.Payload}},            // for another node
		{"a/b/p/" + want.Type, &messages.Envelope{From: "x", Payload: want.Payload}}, // names twice
		{"a/b/p q/" + want.Type, &messages.Envelope{Payload: want.Payload}},          // bad protocol name
	} {
		a.sys.Root.Send(inboxB, &actor.MessageEnvelope{Message: c.env, Sender: actor.NewPID(a.ep.Address(), c.sender)})
	}
	actortest.Eventually(t, 10*time.Second, "4 refusals at b", func() bool { return b.refusals() == 4 })
	if b.count() != 1 {
		t.Errorf("b delivered %d envelopes, want 1", b.count())
	}
}

// TestPeerNewsNeverOverridesAttachedNodes: membership feeds the directory
// with news that may be about an earlier run of a name; a node attached to
// the Network is the authority on its own address, and attaching replaces
// a peer entry of its name.
func TestPeerNewsNeverOverridesAttachedNodes(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	c := actortest.NewCluster(t, 2, cluster.Remote())
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

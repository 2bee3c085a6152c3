package remote_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
	"github.com/troupe-dev/troupe/transport/remote"
)

type node struct {
	sys *actor.ActorSystem
	ep  transport.Endpoint
	mu  sync.Mutex
	got []*messages.Envelope
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

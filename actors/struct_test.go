package actors_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	pb "github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
	"github.com/troupe-dev/troupe/transport/sim"
)

// hello is a struct message: no .proto file, one registration.
type hello struct {
	N    uint64
	Text string
	Any  any // room for a hostile payload's nesting
}

var _ = pb.Register[hello]("actorstest.Hello")

// unregistered is a struct nobody registered.
type unregistered struct{ N uint64 }

type sendHello struct {
	actors.Returns[bool]
	to       actors.NodeName
	n        uint64
	reliable bool
}

type sendAny struct {
	actors.Returns[bool]
	m any
}

type readHellos struct{ actors.Returns[[]uint64] }

// helloProtocol handles hello (struct) and Ping (protobuf) side by side,
// and sends either on request.
func helloProtocol() actors.Factory {
	return protocol("hello", func(ctx *actors.Context) error {
		var got []uint64
		actors.OnMessage(ctx, func(_ *actors.Context, _ actors.NodeName, m *hello) error {
			got = append(got, m.N)
			return nil
		})
		actors.OnMessage(ctx, func(_ *actors.Context, _ actors.NodeName, m *pb.Ping) error {
			got = append(got, 1000+m.N)
			return nil
		})
		actors.OnRequest(ctx, func(ctx *actors.Context, s *sendHello) (bool, error) {
			m := &hello{N: s.n, Text: "hi"}
			if s.reliable {
				return true, ctx.SendReliable(s.to, m)
			}
			if err := ctx.Send(s.to, m); err != nil {
				return false, err
			}
			return true, ctx.Send(s.to, &pb.Ping{N: s.n})
		})
		actors.OnRequest(ctx, func(ctx *actors.Context, s *sendAny) (bool, error) {
			if err := ctx.Send("node-1", s.m); err != nil {
				return false, err
			}
			return true, ctx.SendReliable("node-1", s.m)
		})
		actors.OnRequest(ctx, func(*actors.Context, readHellos) ([]uint64, error) { return slices.Clone(got), nil })
		return nil
	})
}

// TestStructMessagesTravel: a registered struct goes best effort and
// reliably, on the sim network and on the remote one (batched), next to
// a protobuf message, and is counted under its wire name.
func TestStructMessagesTravel(t *testing.T) {
	for _, net := range []string{"sim", "remote"} {
		t.Run(net, func(t *testing.T) {
			var opts []cluster.Option
			if net == "remote" {
				actortest.SkipRemoteUnderRace(t)
				opts = append(opts, cluster.Remote())
			}
			c := clustertest.NewCluster(t, 2, opts...)
			if err := c.Start(helloProtocol()); err != nil {
				t.Fatal(err)
			}
			for i, reliable := range []bool{false, true} {
				if _, err := actors.Call(context.Background(), c.Node("node-1"), "hello", &sendHello{to: "node-2", n: uint64(i + 1), reliable: reliable}); err != nil {
					t.Fatal(err)
				}
			}
			var got []uint64
			actortest.Eventually(t, wait, "three messages", func() bool {
				got, _ = actors.Call(context.Background(), c.Node("node-2"), "hello", readHellos{})
				return len(got) == 3
			})
			slices.Sort(got)
			if !slices.Equal(got, []uint64{1, 2, 1001}) {
				t.Fatalf("node-2 handled %v, want hello 1 and 2 and Ping 1", got)
			}
			in := c.Node("node-2").Stats().Protocols["hello"].Types["actorstest.Hello"]
			if in.MsgsIn != 2 || in.BytesIn == 0 {
				t.Fatalf("node-2 counted %+v under actorstest.Hello, want 2 messages in", in)
			}
		})
	}
}

// TestSendingAnUnregisteredTypeFails: Send and SendReliable refuse what is
// neither protobuf nor a registered struct's pointer, saying what to send.
func TestSendingAnUnregisteredTypeFails(t *testing.T) {
	c := clustertest.NewCluster(t, 1)
	n := c.Node("node-1")
	if err := n.Start(helloProtocol()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		m    any
		want string
	}{
		{&unregistered{}, "*actors_test.unregistered is neither a protobuf message nor a pointer to a struct registered with messages.Register"},
		{hello{}, "actors_test.hello is the struct registered as actorstest.Hello; messages are sent and handled as *actors_test.hello"},
	} {
		_, err := actors.Call(context.Background(), n, "hello", &sendAny{m: c.m})
		if !errors.Is(err, pb.ErrNotRegistered) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("sending %T: %v, want ErrNotRegistered saying %q", c.m, err, c.want)
		}
	}
	if s := n.Stats().Protocols["hello"]; s.Restarts != 0 {
		t.Fatalf("a refused send restarted the protocol: %+v", s)
	}
}

// TestOnMessageRefusesAnUnregisteredType: OnMessage panics at registration
// (so Start fails) for a type that can never arrive, saying which to use.
func TestOnMessageRefusesAnUnregisteredType(t *testing.T) {
	c := clustertest.NewCluster(t, 1)
	n := c.Node("node-1")
	for _, c := range []struct {
		name actors.ProtocolName
		init func(ctx *actors.Context)
		want string
	}{
		{"unregistered", func(ctx *actors.Context) {
			actors.OnMessage(ctx, func(*actors.Context, actors.NodeName, *unregistered) error { return nil })
		}, "OnMessage[*actors_test.unregistered]: messages: not a registered message type: *actors_test.unregistered is neither a protobuf message nor a pointer to a struct registered with messages.Register"},
		{"value", func(ctx *actors.Context) {
			actors.OnMessage(ctx, func(*actors.Context, actors.NodeName, hello) error { return nil })
		}, "actors_test.hello is the struct registered as actorstest.Hello; messages are sent and handled as *actors_test.hello"},
		{"interface", func(ctx *actors.Context) {
			actors.OnMessage(ctx, func(*actors.Context, actors.NodeName, any) error { return nil })
		}, "OnMessage needs a concrete message type"},
	} {
		err := n.Start(protocol(c.name, func(ctx *actors.Context) error { c.init(ctx); return nil }))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Start: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

// TestBadStructInputIsRefusedAndTheProtocolKeepsRunning: garbage,
// truncated, too deep, too long and wrong-typed payloads under a
// registered struct's name are refused, counted and logged, alone (sim)
// or inside a batch (remote's path); the protocol handles the good
// message after them, without a restart.
func TestBadStructInputIsRefusedAndTheProtocolKeepsRunning(t *testing.T) {
	hub, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	var log lockedLog
	net := &keepAttachment{Hub: hub}
	n, err := actors.NewNode(actors.Config{Name: "node-1", Network: net, Logger: zerolog.New(&log)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	if err := n.Start(helloProtocol()); err != nil {
		t.Fatal(err)
	}
	intruder, err := hub.Attach(transport.Attachment{Node: "intruder", Deliver: func(*pb.Envelope, int) {}})
	if err != nil {
		t.Fatal(err)
	}
	good := &pb.Envelope{}
	if err := transport.MarshalPayload(good, &hello{N: 7, Text: "ok"}); err != nil {
		t.Fatal(err)
	}
	deep := append([]byte{0xa1, 0x63, 'A', 'n', 'y'}, strings.Repeat("\x81", 40)...) // {"Any": [[[...]]]}
	deep = append(deep, 0x00)
	huge := []byte{0xa1, 0x63, 'A', 'n', 'y', 0x9a, 0x00, 0x01, 0x00, 0x01} // an array of 65537 elements
	huge = append(huge, make([]byte, 1<<16+1)...)
	bad := map[string][]byte{
		"garbage":    {0xff, 0xfe, 0x00},
		"truncated":  good.Payload[:len(good.Payload)-3],
		"too deep":   deep,
		"too long":   huge,
		"wrong type": {0xa1, 0x61, 'N', 0x62, 'n', 'o'}, // {"N": "no"}
		"protobuf":   {0x08, 0x07},                      // a Ping's bytes under hello's name
		"empty":      nil,
	}
	names := make([]string, 0, len(bad))
	for name := range bad {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if _, err := intruder.Send(&pb.Envelope{From: "intruder", To: "node-1", Protocol: "hello", Type: "actorstest.Hello", Payload: bad[name]}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := intruder.Send(&pb.Envelope{From: "intruder", To: "node-1", Protocol: "hello", Type: "actorstest.Hello", Payload: good.Payload}); err != nil {
		t.Fatal(err)
	}
	// The same in one batch, as the remote network delivers them.
	var batch []byte
	for _, name := range names {
		batch, _, err = transport.AppendEnvelope(batch, &pb.Envelope{Type: "actorstest.Hello", Payload: bad[name]})
		if err != nil {
			t.Fatal(err)
		}
	}
	if batch, _, err = transport.AppendMessage(batch, &hello{N: 8}); err != nil {
		t.Fatal(err)
	}
	net.a.DeliverBatch("intruder", "hello", batch)

	var got []uint64
	actortest.Eventually(t, wait, "the good messages after the bad ones", func() bool {
		got, _ = actors.Call(context.Background(), n, "hello", readHellos{})
		return len(got) == 2
	})
	if !slices.Equal(got, []uint64{7, 8}) {
		t.Fatalf("handled %v, want [7 8]", got)
	}
	s := n.Stats().Protocols["hello"]
	if want := int64(2 * len(bad)); s.Unhandled != want || s.Restarts != 0 || s.Stopped {
		t.Fatalf("unhandled %d (want %d), restarts %d (want 0), stopped %v", s.Unhandled, want, s.Restarts, s.Stopped)
	}
	for _, w := range []string{"dropping a malformed message", "actorstest.Hello", "exceeded max nested level", "exceeded max number of elements", "cannot unmarshal UTF-8 text string into Go struct field"} {
		if !strings.Contains(log.String(), w) {
			t.Errorf("the log does not say %q:\n%s", w, log.String())
		}
	}
}

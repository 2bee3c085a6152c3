package remote

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/security"
	"github.com/troupe-dev/troupe/transport"
)

// TestActorMessagesHook checks what the guard lets an ActorMessages hook
// see: nothing but Troupe's batches without one; with one, only messages
// for this node's address, with senders in range, of a linked type that
// decodes and is not one of protoactor's control messages, and then only
// those the hook admits, its reason in the refusal.
func TestActorMessagesHook(t *testing.T) {
	var log lines
	limiter := security.NewLogLimiter(zerolog.New(&log), 10, time.Hour)
	defer limiter.Close()
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	sys.ProcessRegistry.Address = "127.0.0.1:7000"
	g := &guard{node: "b", sys: sys, log: limiter}
	var seen []proto.Message
	admit := ActorMessages(func(target *actor.PID, msg proto.Message, hasSender bool) error {
		if target.Id == "no" {
			return errors.New("the hook says no")
		}
		if !hasSender {
			return errors.New("no sender")
		}
		seen = append(seen, msg)
		return nil
	})
	ping, _ := proto.Marshal(&messages.Ping{N: 7})
	here, elsewhere := actor.NewPID("127.0.0.1:7000", "grain"), actor.NewPID("127.0.0.1:7001", "grain")
	msg := func(typ string, target *actor.PID, sender int32, data []byte) (*remote.MessageBatch, *remote.MessageEnvelope) {
		b := &remote.MessageBatch{TypeNames: []string{typ}, Targets: []*actor.PID{target}, Senders: []*actor.PID{actor.NewPID("127.0.0.1:7002", "future$1")}}
		e := &remote.MessageEnvelope{TypeId: 0, Target: 0, Sender: sender, MessageData: data}
		return b, e
	}
	b, e := msg("troupe.examples.v1.Ping", here, 1, ping)
	if err := g.admit(b, e, "peer", ""); !errors.Is(err, transport.ErrMalformed) || !strings.Contains(err.Error(), "without a sender") {
		t.Errorf("without a hook: %v; want the port to take Troupe's batches only", err)
	}
	g.actors.Store(&admit)
	if err := g.admit(b, e, "peer", ""); err != nil || len(seen) != 1 || seen[0].(*messages.Ping).N != 7 {
		t.Errorf("with a hook: %v, hook saw %v; want Ping 7 passed on", err, seen)
	}
	for _, tc := range []struct {
		what   string
		typ    string
		target *actor.PID
		sender int32
		data   []byte
		want   error
		says   string
	}{
		{"another address", "troupe.examples.v1.Ping", elsewhere, 1, ping, transport.ErrMalformed, "its own address only"},
		{"a sender out of range", "troupe.examples.v1.Ping", here, 2, ping, transport.ErrMalformed, "sender number 2"},
		{"a control message", "actor.PoisonPill", here, 1, nil, transport.ErrMalformed, "control messages are refused"},
		{"a remote message", "remote.ActorPidRequest", here, 1, nil, transport.ErrMalformed, "control messages are refused"},
		{"a type not linked", "nobody.Knows", here, 1, ping, transport.ErrUnknownType, "does not link"},
		{"bytes that do not decode", "troupe.examples.v1.Ping", here, 1, []byte{0xff}, transport.ErrMalformed, "does not decode"},
		{"what the hook refuses", "troupe.examples.v1.Ping", actor.NewPID("127.0.0.1:7000", "no"), 1, ping, transport.ErrMalformed, "the hook says no"},
		{"no sender", "troupe.examples.v1.Ping", here, 0, ping, transport.ErrMalformed, "no sender"},
	} {
		b, e := msg(tc.typ, tc.target, tc.sender, tc.data)
		err := g.admit(b, e, "peer", "")
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v; want %v saying %q", tc.what, err, tc.want, tc.says)
		}
	}
	if len(seen) != 1 {
		t.Errorf("the hook saw %d messages; want only the first", len(seen))
	}
	dead, _ := proto.Marshal(&actor.DeadLetterResponse{})
	b, e = msg("actor.DeadLetterResponse", here, 1, dead)
	if err := g.admit(b, e, "peer", ""); err != nil {
		t.Errorf("a dead letter response: %v; want it passed on (the answer to a request for a process that is gone)", err)
	}
}

// FuzzReceiveActorMessages feeds a node port's bytes through the guard
// with an ActorMessages hook that admits everything it is shown (the
// worst a hook can do), and then as protoactor's reader handles what
// passes: what passes must be for this node's address, name its sender
// within the batch, decode by its type name, and be none of protoactor's
// system or control messages.
func FuzzReceiveActorMessages(f *testing.F) {
	f.Add(remoteMessage(f, fuzzAddr, &messages.Ping{N: 4}))
	f.Add(remoteMessage(f, fuzzAddr, &actor.Terminated{}))
	f.Add(remoteMessage(f, fuzzAddr, &actor.PoisonPill{}))
	f.Add(remoteMessage(f, fuzzAddr, &actor.DeadLetterResponse{}))
	f.Add(remoteMessage(f, "10.0.0.1:7000", &messages.Ping{N: 4}))
	f.Add(realBatch(f, fuzzAddr, "a/b/p", &messages.Ping{N: 1}))
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	sys.ProcessRegistry.Address = fuzzAddr
	limiter := security.NewLogLimiter(zerolog.Nop(), 10, time.Hour)
	f.Cleanup(limiter.Close)
	admit := ActorMessages(func(*actor.PID, proto.Message, bool) error { return nil })
	f.Fuzz(func(t *testing.T, data []byte) {
		var rm remote.RemoteMessage
		if proto.Unmarshal(data, &rm) != nil {
			return
		}
		refused := 0
		g := &guard{node: "b", sys: sys, reject: func(error) { refused++ }, log: limiter}
		g.actors.Store(&admit)
		s := &guardedStream{g: g, addr: "127.0.0.1:40000"}
		if !s.admit(&rm) {
			if refused == 0 {
				t.Fatal("a message was dropped without a refusal")
			}
			return
		}
		b := rm.GetMessageBatch()
		if b == nil {
			return
		}
		for _, e := range b.Envelopes {
			target := b.Targets[e.Target]
			if target.Address != fuzzAddr {
				t.Fatalf("passed on a message for %v", target)
			}
			if e.Sender < 0 || int(e.Sender) > len(b.Senders) || (e.Sender > 0 && b.Senders[e.Sender-1] == nil) {
				t.Fatalf("passed on a message from sender number %d of %d", e.Sender, len(b.Senders))
			}
			m, err := remote.Deserialize(e.MessageData, b.TypeNames[e.TypeId], e.SerializerId)
			if err != nil {
				t.Fatalf("passed on a %s that protoactor cannot decode: %v", b.TypeNames[e.TypeId], err)
			}
			switch m.(type) {
			case actor.SystemMessage, actor.AutoReceiveMessage, *actor.Terminated:
				t.Fatalf("passed on protoactor's %T", m)
			}
		}
	})
}

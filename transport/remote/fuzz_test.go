package remote

import (
	"bytes"
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

const fuzzAddr = "127.0.0.1:7000" // the fuzzed node's address

// realBatch is a protoactor RemoteMessage as a Troupe node's endpoint
// writer sends it: one troupe.v1.Batch, serialized by protoactor's own
// serializer, for the inbox of the node at addr.
func realBatch(tb testing.TB, addr, names string, ms ...proto.Message) []byte {
	tb.Helper()
	var entries []byte
	var err error
	for i, m := range ms {
		if i%2 == 1 { // a reliable send travels as a whole envelope
			env := &messages.Envelope{Session: 7, Seq: uint64(i)}
			if err := transport.MarshalPayload(env, m); err != nil {
				tb.Fatal(err)
			}
			entries, _, err = transport.AppendEnvelope(entries, env)
		} else {
			entries, _, err = transport.AppendMessage(entries, m)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	return remoteMessage(tb, addr, &messages.Batch{Names: []byte(names), Envelopes: entries})
}

// remoteMessage wraps one message for the inbox at addr as protoactor's
// writer does.
func remoteMessage(tb testing.TB, addr string, m proto.Message) []byte {
	tb.Helper()
	data, typeName, err := remote.Serialize(m, 0)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := proto.Marshal(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: &remote.MessageBatch{
		TypeNames: []string{typeName},
		Targets:   []*actor.PID{actor.NewPID(addr, inboxID)},
		Envelopes: []*remote.MessageEnvelope{{TypeId: 0, Target: 0, MessageData: data}},
	}}})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzReceive feeds a node port's bytes, as a RemoteMessage of a Receive
// stream, through the guard and then as protoactor's reader would handle
// what the guard passes on (decode by type name, hand to the target) into
// the inbox and the batch walk. Nothing may panic; what passes must decode,
// be a troupe.v1.Batch for the inbox, and with mutual TLS (cert set) come
// from the certificate's node.
func FuzzReceive(f *testing.F) {
	f.Add(realBatch(f, fuzzAddr, "a/b/p", &messages.Ping{N: 1}, &messages.Ping{N: 2}, &messages.Pong{N: 3}), "")
	f.Add(realBatch(f, fuzzAddr, "a/b/p", &messages.Ping{N: 1}), "a")
	f.Add(realBatch(f, fuzzAddr, "a/b/p", &messages.Ping{N: 1}), "m")
	f.Add(realBatch(f, "10.0.0.1:7000", "a/b/p", &messages.Ping{N: 1}), "")
	f.Add(remoteMessage(f, fuzzAddr, &actor.Terminated{}), "")
	f.Add(remoteMessage(f, fuzzAddr, &actor.Watch{}), "")
	f.Add(remoteMessage(f, fuzzAddr, &messages.Ping{N: 4}), "")
	connect, _ := proto.Marshal(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: &remote.ConnectRequest{
		ConnectionType: &remote.ConnectRequest_ServerConnection{ServerConnection: &remote.ServerConnection{SystemId: "s", Address: "127.0.0.1:7001"}}}}})
	f.Add(connect, "")
	empty, _ := proto.Marshal(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: &remote.ConnectRequest{}}})
	f.Add(empty, "")
	sys := actor.NewActorSystem()
	sys.ProcessRegistry.Address = fuzzAddr
	limiter := security.NewLogLimiter(zerolog.Nop(), 10, time.Hour)
	f.Cleanup(limiter.Close)
	f.Fuzz(func(t *testing.T, data []byte, cert string) {
		var rm remote.RemoteMessage
		if proto.Unmarshal(data, &rm) != nil {
			return // gRPC refuses what does not decode
		}
		var refused, delivered int
		g := &guard{node: "b", sys: sys, tls: cert != "", reject: func(error) { refused++ }, log: limiter}
		s := &guardedStream{g: g, addr: "127.0.0.1:40000", name: cert}
		if !s.admit(&rm) {
			if refused == 0 {
				t.Fatal("a message was dropped without a refusal")
			}
			return
		}
		b := rm.GetMessageBatch()
		if b == nil {
			if rm.GetConnectRequest().GetServerConnection() == nil {
				t.Fatalf("passed on %v", &rm)
			}
			return
		}
		ep := &endpoint{name: "b", reject: g.reject, deliverBatch: func(from, protocol string, envelopes []byte) {
			if g.tls && from != cert {
				t.Fatalf("delivered a batch from %q over a connection with %q's certificate", from, cert)
			}
			delivered++
			for len(envelopes) > 0 {
				_, rest, err := transport.NextEntry(envelopes)
				if err != nil {
					return // the receiving protocol refuses the rest
				}
				envelopes = rest
			}
		}}
		in := &inbox{ep: ep, names: map[string]*names{}}
		for _, e := range b.Envelopes {
			target := b.Targets[e.Target]
			if target.Id != inboxID || target.Address != fuzzAddr || e.Sender != 0 {
				t.Fatalf("passed on a message for %v from sender %d", target, e.Sender)
			}
			m, err := remote.Deserialize(e.MessageData, b.TypeNames[e.TypeId], e.SerializerId)
			if err != nil {
				t.Fatalf("passed on a %s that protoactor cannot decode: %v", b.TypeNames[e.TypeId], err)
			}
			if _, ok := m.(*messages.Batch); !ok {
				t.Fatalf("passed on a %T", m)
			}
			in.SendUserMessage(target, m)
		}
		if delivered > len(b.Envelopes) {
			t.Fatalf("%d batches passed on, %d delivered", len(b.Envelopes), delivered)
		}
	})
}

// FuzzBatchNames: the guard's walk of a troupe.v1.Batch accepts only what
// protobuf decodes, and finds the names protobuf does.
func FuzzBatchNames(f *testing.F) {
	for _, b := range []*messages.Batch{{Names: []byte("a/b/p"), Envelopes: []byte{0x0a, 0}}, {}, {Names: []byte("x")}} {
		data, _ := proto.Marshal(b)
		f.Add(data)
	}
	f.Add([]byte{0x0a, 0x7f})
	f.Add([]byte{0x0b, 0x0c})             // a group
	f.Add([]byte{0x18, 0x01, 0x0a, 0x00}) // a newer field, then names
	f.Fuzz(func(t *testing.T, data []byte) {
		names, err := batchNames(data)
		if err != nil {
			return
		}
		var b messages.Batch
		if err := proto.Unmarshal(data, &b); err != nil {
			t.Fatalf("the walk accepted what protobuf refuses: %v", err)
		}
		if !bytes.Equal(names, b.Names) {
			t.Fatalf("the walk found names %q; protobuf %q", names, b.Names)
		}
	})
}

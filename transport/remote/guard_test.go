package remote_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protoremote "github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
	"github.com/troupe-dev/troupe/transport/remote"
)

// TestForeignBatchesAreRefused speaks protoactor's wire protocol to a node
// directly, as a broken or newer peer could: a message of a type the node
// does not link, or whose table numbers point past the batch's tables,
// would panic protoactor's reader and take the process down. The node
// refuses each, naming the problem, and goes on receiving.
func TestForeignBatchesAreRefused(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	net, err := remote.New(remote.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b := attach(t, net, "b")
	conn, err := grpc.Dial(b.ep.Address(), grpc.WithTransportCredentials(insecure.NewCredentials())) //nolint:staticcheck // protoactor pins a gRPC without NewClient
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := protoremote.NewRemotingClient(conn).Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inbox := actor.NewPID(b.ep.Address(), "troupe")
	good, _, _ := transport.AppendMessage(nil, &messages.Ping{N: 5})
	goodBatch, _ := proto.Marshal(&messages.Batch{Names: []byte("a/b/p"), Envelopes: good})
	send := func(types []string, envs ...*protoremote.MessageEnvelope) {
		t.Helper()
		err := stream.Send(&protoremote.RemoteMessage{MessageType: &protoremote.RemoteMessage_MessageBatch{MessageBatch: &protoremote.MessageBatch{
			TypeNames: types, Targets: []*actor.PID{inbox}, Envelopes: envs}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	send([]string{"troupe.v2.Newer", "troupe.v1.Batch"},
		&protoremote.MessageEnvelope{TypeId: 0, MessageData: []byte("abc")}, // unknown type
		&protoremote.MessageEnvelope{TypeId: 7, MessageData: goodBatch},     // no such type number
		&protoremote.MessageEnvelope{TypeId: 1, Target: 3, MessageData: goodBatch},
		&protoremote.MessageEnvelope{TypeId: 1, Sender: 2, MessageData: goodBatch},
		&protoremote.MessageEnvelope{TypeId: 1, SerializerId: 9, MessageData: goodBatch},
		&protoremote.MessageEnvelope{TypeId: 1, MessageData: goodBatch}, // the one good message
	)
	actortest.Eventually(t, 10*time.Second, "5 refusals and the good batch", func() bool { return b.refusals() == 5 && b.count() == 1 })
	b.mu.Lock()
	defer b.mu.Unlock()
	var unknown, malformed int
	for _, err := range b.refused {
		switch {
		case errors.Is(err, transport.ErrUnknownType):
			unknown++
		case errors.Is(err, transport.ErrMalformed):
			malformed++
		}
		t.Log(err)
	}
	if unknown != 1 || malformed != 4 {
		t.Errorf("%d unknown-type and %d malformed refusals, want 1 and 4", unknown, malformed)
	}
}

package remote_test

import (
	"testing"
	"time"

	protoremote "github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/troupe-dev/troupe/transport"
	"github.com/troupe-dev/troupe/transport/remote"
)

// TestOversizedMessageIsRefused: a gRPC message over the node port's bound
// (64 MiB, what Troupe sends with room) ends its stream with
// codes.ResourceExhausted, before a byte of it is looked at, and the node
// goes on delivering.
func TestOversizedMessageIsRefused(t *testing.T) {
	if remote.MaxGRPCMessage > 64<<20 || remote.MaxGRPCMessage < remote.WriterBatch*(64<<10)+3*transport.MaxEnvelopeSize {
		t.Fatalf("the bound is %d bytes; want at most 64 MiB and room for a flood's %d batches of 64 KiB and three %d-byte envelopes", remote.MaxGRPCMessage, remote.WriterBatch, transport.MaxEnvelopeSize)
	}
	var log logBuf
	c, rec, imp := victim(t, &log)
	r := openRaw(t, c.Node("node-2").Address(), insecure.NewCredentials())
	r.batch([]string{"troupe.v1.Batch"}, nil, &protoremote.MessageEnvelope{MessageData: make([]byte, remote.MaxGRPCMessage)})
	ended := make(chan error, 1)
	go func() {
		_, err := r.stream.Recv()
		ended <- err
	}()
	select {
	case err := <-ended:
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("the stream ended with %v; want codes.ResourceExhausted", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the node accepted a message over the bound: its stream is still open after 10s")
	}
	delivers(t, c, rec, imp, 2)
}

package remote

import (
	"fmt"
	"sync"

	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// guard checks each batch a node's gRPC server receives before protoactor's
// reader decodes it. The reader trusts the batch: it indexes its tables
// with the numbers each message carries and decodes each message by the
// type name the sender wrote, and a number out of range or a name this
// binary does not link (a newer node's message, in a rolling upgrade)
// panics the reader's goroutine, which takes the whole process down. guard
// drops a message whose numbers are out of range (told to reject) and puts
// an UnknownType, naming the type, in the place of a message of an unknown
// type, which the inbox refuses with an error naming it.
type guard struct {
	node   string
	reject func(error)
}

func (g guard) intercept(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, guardedStream{ServerStream: ss, g: g})
}

type guardedStream struct {
	grpc.ServerStream
	g guard
}

func (s guardedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if rm, ok := m.(*remote.RemoteMessage); ok {
		if b := rm.GetMessageBatch(); b != nil {
			s.g.check(b)
		}
	}
	return nil
}

// unknownTypeName is the full name of messages.UnknownType.
var unknownTypeName = string((&messages.UnknownType{}).ProtoReflect().Descriptor().FullName())

// known caches the type names this binary links: protoregistry's lookup
// takes a lock, and a batch's names repeat.
var known sync.Map // string → struct{}

func linked(name string) bool {
	if _, ok := known.Load(name); ok {
		return true
	}
	if _, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name)); err != nil {
		return false
	}
	known.Store(name, struct{}{})
	return true
}

func (g guard) check(b *remote.MessageBatch) {
	var unknown map[int32]string // type id → the name the sender gave
	for i, name := range b.TypeNames {
		if !linked(name) {
			if unknown == nil {
				unknown = map[int32]string{}
			}
			unknown[int32(i)] = name
		}
	}
	kept := b.Envelopes[:0]
	for _, e := range b.Envelopes {
		if err := g.inRange(b, e); err != nil {
			if g.reject != nil {
				g.reject(err)
			}
			continue
		}
		if name, ok := unknown[e.TypeId]; ok {
			e.MessageData, _ = proto.Marshal(&messages.UnknownType{Type: name, Size: uint32(len(e.MessageData))})
		}
		kept = append(kept, e)
	}
	clear(b.Envelopes[len(kept):])
	b.Envelopes = kept
	for id := range unknown {
		b.TypeNames[id] = unknownTypeName
	}
}

// inRange checks the table numbers of one message of a batch.
func (g guard) inRange(b *remote.MessageBatch, e *remote.MessageEnvelope) error {
	switch {
	case e == nil:
		return fmt.Errorf("%w: node %s received an empty slot in a message batch", transport.ErrMalformed, g.node)
	case e.SerializerId != 0:
		return fmt.Errorf("%w: node %s received a message for serializer %d; troupe nodes send protobuf (serializer 0)", transport.ErrMalformed, g.node, e.SerializerId)
	case e.TypeId < 0 || int(e.TypeId) >= len(b.TypeNames):
		return fmt.Errorf("%w: node %s received a message of type number %d; the batch names %d types", transport.ErrMalformed, g.node, e.TypeId, len(b.TypeNames))
	case e.Target < 0 || int(e.Target) >= len(b.Targets) || b.Targets[e.Target] == nil:
		return fmt.Errorf("%w: node %s received a message for target number %d; the batch names %d targets", transport.ErrMalformed, g.node, e.Target, len(b.Targets))
	case e.Sender < 0 || int(e.Sender) > len(b.Senders) || e.Sender > 0 && b.Senders[e.Sender-1] == nil:
		return fmt.Errorf("%w: node %s received a message from sender number %d; the batch names %d senders", transport.ErrMalformed, g.node, e.Sender, len(b.Senders))
	}
	return nil
}

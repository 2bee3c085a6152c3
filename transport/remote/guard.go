package remote

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/security"
	"github.com/troupe-dev/troupe/transport"
)

// receiveMethod is the one gRPC method of protoactor's Remoting service a
// Troupe node serves: the stream its peers' endpoint writers open.
// ListProcesses and GetProcessDiagnostics panic in protoactor ("implement
// me") and Troupe needs neither.
const receiveMethod = "/remote.Remoting/Receive"

// served are the gRPC methods a node serves; the interceptors refuse every
// other before protoactor sees it.
var served = map[string]bool{receiveMethod: true}

// batchTypeName is the one message type Troupe sends over protoactor
// remote: troupe.v1.Batch.
var batchTypeName = string((&messages.Batch{}).ProtoReflect().Descriptor().FullName())

// Log kinds of the guard (security.LogLimiter): fixed strings, the details
// go in fields.
const (
	kindMethod  = "refused a gRPC call: a method troupe nodes do not serve"
	kindMessage = "refused a message on the node port"
	kindPanic   = "recovered a panic serving the node port"
)

// guard stands between a node's gRPC server and protoactor's endpoint
// reader, which trusts what it reads: it indexes a batch's tables with the
// numbers each message carries, decodes each message by the type name the
// sender wrote, forwards a message to whatever address its target names,
// and acts on protoactor's system messages (an actor.Terminated without
// its actor panics it). A panic there takes the whole process down.
//
// The guard serves only the Receive stream (unary calls are refused with
// codes.Unimplemented), recovers a panic of any method as a
// codes.Internal error, and passes on only what Troupe sends: a connect
// request of a server connection, and batches of troupe.v1.Batch messages
// for this node's inbox, well formed, without a sender, and — with mutual
// TLS — from the node the peer's certificate names. Everything else is
// dropped, logged (rate limited, counted) and, for messages, told to
// reject.
type guard struct {
	node   string
	sys    *actor.ActorSystem // its Address is the inbox's address, set before the server serves
	tls    bool               // mutual TLS: a peer sends only as the node its certificate names
	reject func(error)
	log    *security.LogLimiter
	// actors, when set, passes on protoactor messages other than Troupe's
	// batches that it admits (Network.AdmitActorMessages).
	actors atomic.Pointer[ActorMessages]
}

// unary refuses every unary call: Troupe uses none.
func (g *guard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (_ any, err error) {
	if !served[info.FullMethod] {
		return nil, g.refuseMethod(ctx, info.FullMethod)
	}
	defer g.recover(ctx, info.FullMethod, &err)
	return handler(ctx, req)
}

// stream serves the Receive stream through a guardedStream and refuses
// every other stream.
func (g *guard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	if !served[info.FullMethod] {
		return g.refuseMethod(ss.Context(), info.FullMethod)
	}
	defer g.recover(ss.Context(), info.FullMethod, &err)
	addr, name := g.peer(ss.Context())
	return handler(srv, &guardedStream{ServerStream: ss, g: g, addr: addr, name: name})
}

func (g *guard) refuseMethod(ctx context.Context, method string) error {
	addr, name := g.peer(ctx)
	g.log.Warn(kindMethod).Str("peer", addr).Str("certificate", name).Str("method", method).Msg(kindMethod)
	return status.Errorf(codes.Unimplemented, "troupe node %s serves only %s on its node port; %s is refused", g.node, receiveMethod, method)
}

// recover turns a panic of a method into an error: the call ends, the
// process goes on.
func (g *guard) recover(ctx context.Context, method string, err *error) {
	p := recover()
	if p == nil {
		return
	}
	addr, name := g.peer(ctx)
	e := fmt.Errorf("%w: node %s: serving %s to %s panicked: %v", transport.ErrMalformed, g.node, method, addr, p)
	g.log.Warn(kindPanic).Str("peer", addr).Str("certificate", name).Str("method", method).
		Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg(kindPanic)
	if g.reject != nil {
		g.reject(e)
	}
	*err = status.Errorf(codes.Internal, "troupe node %s could not serve %s: it panicked on the input", g.node, method)
}

// peer returns the address of the other side of a call, and with mutual
// TLS the node its certificate names ("" without).
func (g *guard) peer(ctx context.Context) (addr, name string) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "an unknown address", ""
	}
	addr = "an unknown address"
	if p.Addr != nil {
		addr = p.Addr.String()
	}
	if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
		name = security.NodeName(info.State.PeerCertificates[0])
	}
	return addr, name
}

// guardedStream checks each message a peer sends on a Receive stream
// before protoactor's reader sees it, and receives the next in the place
// of one it refuses.
type guardedStream struct {
	grpc.ServerStream
	g    *guard
	addr string // the peer's address
	name string // with mutual TLS, the node the peer's certificate names
}

func (s *guardedStream) RecvMsg(m any) error {
	for {
		if err := s.ServerStream.RecvMsg(m); err != nil {
			return err
		}
		rm, ok := m.(*remote.RemoteMessage)
		if !ok {
			return nil // not protoactor's stream: served[] lets no other through
		}
		if s.admit(rm) {
			return nil
		}
		proto.Reset(rm)
	}
}

// admit checks one message of the stream, and trims a batch to the
// messages it may pass on. It reports whether anything is left to pass on.
func (s *guardedStream) admit(rm *remote.RemoteMessage) bool {
	switch t := rm.GetMessageType().(type) {
	case *remote.RemoteMessage_MessageBatch:
		if len(t.MessageBatch.GetEnvelopes()) == 0 {
			s.refuse(fmt.Errorf("%w: node %s received an empty message batch from %s", transport.ErrMalformed, s.g.node, s.addr))
			return false
		}
		return s.g.check(t.MessageBatch, s.addr, s.name, s.refuse)
	case *remote.RemoteMessage_ConnectRequest:
		if t.ConnectRequest.GetServerConnection() == nil {
			s.refuse(fmt.Errorf("%w: node %s received a connect request from %s without a server connection; troupe nodes connect as servers (protoactor's ServerConnection)", transport.ErrMalformed, s.g.node, s.addr))
			return false
		}
		return true
	default:
		s.refuse(fmt.Errorf("%w: node %s received a %T from %s; troupe nodes send a connect request and message batches", transport.ErrMalformed, s.g.node, t, s.addr))
		return false
	}
}

func (s *guardedStream) refuse(err error) { s.g.refuse(err, s.addr, s.name) }

func (g *guard) refuse(err error, addr, name string) {
	g.log.Warn(kindMessage).Str("peer", addr).Str("certificate", name).Err(err).Msg(kindMessage)
	if g.reject != nil {
		g.reject(err)
	}
}

// check drops from a batch every message Troupe would not send, telling
// refuse why, and reports whether any is left. A message passes when its
// table numbers are in range, its type is troupe.v1.Batch, encoded by
// protobuf (serializer 0) and well formed, its target is this node's inbox
// and it has no sender; with mutual TLS (name set) its sender node must be
// name.
func (g *guard) check(b *remote.MessageBatch, addr, name string, refuse func(error)) bool {
	kept := b.Envelopes[:0]
	for _, e := range b.Envelopes {
		if err := g.admit(b, e, addr, name); err != nil {
			refuse(err)
			continue
		}
		kept = append(kept, e)
	}
	clear(b.Envelopes[len(kept):])
	b.Envelopes = kept
	return len(kept) > 0
}

// admit checks one message of a batch.
func (g *guard) admit(b *remote.MessageBatch, e *remote.MessageEnvelope, addr, name string) error {
	if err := g.tables(b, e, addr); err != nil {
		return err
	}
	if admit := g.actors.Load(); admit != nil && (b.TypeNames[e.TypeId] != batchTypeName || b.Targets[e.Target].Id != inboxID) {
		return g.admitActor(*admit, b, e, addr)
	}
	if err := g.inRange(b, e, addr); err != nil {
		return err
	}
	if typ := b.TypeNames[e.TypeId]; typ != batchTypeName {
		if _, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(typ)); err != nil {
			return fmt.Errorf("%w: node %s received a %q (%d bytes) from %s, a type its binary does not link; troupe nodes send %s",
				transport.ErrUnknownType, g.node, typ, len(e.MessageData), addr, batchTypeName)
		}
		return fmt.Errorf("%w: node %s received a %s from %s; troupe nodes send only %s over protoactor remote",
			transport.ErrMalformed, g.node, typ, addr, batchTypeName)
	}
	names, err := batchNames(e.MessageData)
	if err != nil {
		return fmt.Errorf("%w: node %s received a %s from %s that does not decode: %v", transport.ErrMalformed, g.node, batchTypeName, addr, err)
	}
	if g.tls {
		from, _, _ := strings.Cut(string(names), "/")
		if name == "" || from != name {
			return fmt.Errorf("%w: node %s received a batch sent as node %q from %s, whose certificate is for node %q; a node sends only as the node its certificate names (its common name)",
				transport.ErrMalformed, g.node, from, addr, name)
		}
	}
	return nil
}

// tables checks the table numbers and the serializer of one message of a
// batch: what every message must pass.
func (g *guard) tables(b *remote.MessageBatch, e *remote.MessageEnvelope, addr string) error {
	switch {
	case e == nil:
		return fmt.Errorf("%w: node %s received an empty slot in a message batch from %s", transport.ErrMalformed, g.node, addr)
	case e.SerializerId != 0:
		return fmt.Errorf("%w: node %s received a message for serializer %d from %s; troupe nodes send protobuf (serializer 0)", transport.ErrMalformed, g.node, e.SerializerId, addr)
	case e.TypeId < 0 || int(e.TypeId) >= len(b.TypeNames):
		return fmt.Errorf("%w: node %s received a message of type number %d from %s; the batch names %d types", transport.ErrMalformed, g.node, e.TypeId, addr, len(b.TypeNames))
	case e.Target < 0 || int(e.Target) >= len(b.Targets) || b.Targets[e.Target] == nil:
		return fmt.Errorf("%w: node %s received a message for target number %d from %s; the batch names %d targets", transport.ErrMalformed, g.node, e.Target, addr, len(b.Targets))
	}
	return nil
}

// inRange checks the target and the sender of a Troupe batch (tables has
// checked the rest).
func (g *guard) inRange(b *remote.MessageBatch, e *remote.MessageEnvelope, addr string) error {
	switch {
	case e.Sender != 0 || e.SenderRequestId != 0:
		return fmt.Errorf("%w: node %s received a message from sender number %d from %s; troupe nodes send without a sender (0)", transport.ErrMalformed, g.node, e.Sender, addr)
	case e.TargetRequestId != 0:
		return fmt.Errorf("%w: node %s received a message for request %d from %s; troupe nodes send to their peers' inboxes, not to requests", transport.ErrMalformed, g.node, e.TargetRequestId, addr)
	}
	if t := b.Targets[e.Target]; t.Id != inboxID || t.Address != g.sys.Address() {
		return fmt.Errorf("%w: node %s (at %s) received a message for process %q at %q from %s; troupe nodes send to %q at the address they dialled",
			transport.ErrMalformed, g.node, g.sys.Address(), t.Id, t.Address, addr, inboxID)
	}
	return nil
}

// batchNames walks the encoding of a troupe.v1.Batch without copying it
// and returns its names: what protoactor's decoding will accept, and no
// more. Field 1 (names) and 2 (envelopes) must be bytes; other fields
// (a newer version's) may be anything but groups.
func batchNames(b []byte) ([]byte, error) {
	var names []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case (num == 1 || num == 2) && typ != protowire.BytesType:
			return nil, fmt.Errorf("field %d has wire type %d; want bytes (2)", num, typ)
		case typ == protowire.StartGroupType || typ == protowire.EndGroupType:
			return nil, fmt.Errorf("field %d is a group; a batch has none", num)
		case num == 1:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			names, b = v, b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return names, nil
}

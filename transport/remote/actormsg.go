package remote

import (
	"fmt"
	"strings"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/troupe-dev/troupe/transport"
)

// ActorMessages decides which protoactor messages, besides Troupe's own
// batches, a node's port passes on to protoactor: the traffic of
// protoactor's actor cluster (package grains) sharing the node's remote.
// It gets each such message decoded, with its target process on this node
// and whether it names a sender to answer; a nil error lets it through, an
// error refuses it (logged with the peer, counted as rejected). It runs on
// gRPC's reader goroutines, concurrently: it must not block.
//
// Before it is asked, the guard has checked what it checks for every
// message (table numbers in range, serializer 0, a target at this node's
// own address, a type this binary links that decodes) and refused every
// message of protoactor's own packages (actor.*, remote.*: system
// messages such as actor.Terminated, Watch, Stop, PoisonPill), except
// actor.DeadLetterResponse, which a node answers a request to a process
// that is gone with.
type ActorMessages func(target *actor.PID, msg proto.Message, hasSender bool) error

// AdmitActorMessages installs admit for the node attached under name; nil
// removes it, and the port passes on Troupe's batches alone again (the
// default). It fails for a node not attached to this Network.
func (n *Network) AdmitActorMessages(node string, admit ActorMessages) error {
	n.mu.RLock()
	ep := n.eps[node]
	n.mu.RUnlock()
	if ep == nil {
		return fmt.Errorf("remote: no node %q is attached to this network", node)
	}
	if admit == nil {
		ep.guard.actors.Store(nil)
	} else {
		ep.guard.actors.Store(&admit)
	}
	return nil
}

// deadLetterResponse is the one message of protoactor's actor package a
// node passes on to an ActorMessages hook.
var deadLetterResponse = string((&actor.DeadLetterResponse{}).ProtoReflect().Descriptor().FullName())

// admitActor checks a message that is not a Troupe batch for this node's
// inbox, against the ActorMessages hook. Table numbers are in range
// (inRange's first cases).
func (g *guard) admitActor(admit ActorMessages, b *remote.MessageBatch, e *remote.MessageEnvelope, addr string) error {
	typ, target := b.TypeNames[e.TypeId], b.Targets[e.Target]
	switch {
	case target.Address != g.sys.Address():
		return fmt.Errorf("%w: node %s (at %s) received a message for %q at %q from %s; a node takes messages for its own address only",
			transport.ErrMalformed, g.node, g.sys.Address(), target.Id, target.Address, addr)
	case e.Sender < 0 || int(e.Sender) > len(b.Senders) || (e.Sender > 0 && b.Senders[e.Sender-1] == nil):
		return fmt.Errorf("%w: node %s received a message from sender number %d from %s; the batch names %d senders",
			transport.ErrMalformed, g.node, e.Sender, addr, len(b.Senders))
	case (strings.HasPrefix(typ, "actor.") && typ != deadLetterResponse) || strings.HasPrefix(typ, "remote."):
		return fmt.Errorf("%w: node %s received a %s for %q from %s; protoactor's system and control messages are refused on the node port",
			transport.ErrMalformed, g.node, typ, target.Id, addr)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(typ))
	if err != nil {
		return fmt.Errorf("%w: node %s received a %q (%d bytes) for %q from %s, a type its binary does not link",
			transport.ErrUnknownType, g.node, typ, len(e.MessageData), target.Id, addr)
	}
	msg := mt.New().Interface()
	if err := proto.Unmarshal(e.MessageData, msg); err != nil {
		return fmt.Errorf("%w: node %s received a %s for %q from %s that does not decode: %v", transport.ErrMalformed, g.node, typ, target.Id, addr, err)
	}
	if err := admit(target, msg, e.Sender > 0); err != nil {
		return fmt.Errorf("%w: node %s refused a %s for %q from %s: %w", transport.ErrMalformed, g.node, typ, target.Id, addr, err)
	}
	return nil
}

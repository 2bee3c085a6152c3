package transport

import (
	"errors"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-dev/troupe/messages"
)

// Errors returned by networks and by the codec. Each is wrapped with the
// detail (node, type, size) that made it happen; test with [errors.Is].
var (
	// ErrUnknownNode: the destination's name does not resolve to any node.
	ErrUnknownNode = errors.New("transport: unknown node")
	// ErrNameTaken: a live endpoint already uses that node name.
	ErrNameTaken = errors.New("transport: node name already attached")
	// ErrClosed: the endpoint was closed; it neither sends nor receives.
	ErrClosed = errors.New("transport: endpoint closed")
	// ErrMalformed: bytes or fields that do not form a valid envelope.
	ErrMalformed = errors.New("transport: malformed envelope")
	// ErrTooLarge: an envelope over MaxEnvelopeSize.
	ErrTooLarge = errors.New("transport: message too large")
	// ErrUnknownType: a payload type that is neither linked into this
	// binary (protobuf) nor registered (messages.Register).
	ErrUnknownType = errors.New("transport: unknown message type")
)

// MaxEnvelopeSize is the largest encoded envelope any network accepts: 4 MiB,
// gRPC's default receive limit.
const MaxEnvelopeSize = 4 << 20

// Deliver receives every envelope that arrives for an attached node, with its
// encoded size in bytes. Networks call it from their own goroutines, possibly
// several at once; it must not block (the runtime only enqueues the envelope
// to a mailbox). The envelope belongs to the callee and was validated with
// [Validate].
type Deliver func(env *messages.Envelope, size int)

// DeliverBatch receives the envelopes of a [messages.Batch] (see
// [NextEntry]) that protocol on node from sent to an attached node, in the
// order they were sent. The names were validated; the envelopes were not
// (the callee walks them on its own goroutine). Same threading contract as
// [Deliver]; envelopes belongs to the callee.
type DeliverBatch func(from, protocol string, envelopes []byte)

// Attachment is what a node brings when it joins a network.
type Attachment struct {
	// Node is the node's name: its identity on the network.
	Node string
	// System is the node's actor system. Networks built on protoactor remote
	// serve the node's actors through it; others ignore it.
	System *actor.ActorSystem
	// Deliver is called for each envelope addressed to Node, by networks
	// that carry single envelopes (sim), which require it.
	Deliver Deliver
	// DeliverBatch is called for each batch of envelopes. Networks that
	// carry batches (remote) require it; the others ignore it.
	DeliverBatch DeliverBatch
	// Reject, if set, is told of each arriving envelope the network refused
	// (malformed, or addressed to another node), so the node can log and
	// count it. Same threading contract as Deliver.
	Reject func(err error)
}

// Network moves envelopes between named nodes, best effort: an envelope may
// be lost, duplicated, delayed or reordered, and the runtime builds reliable
// delivery on top. Implementations are safe for concurrent use.
type Network interface {
	// Attach joins a node to the network. It fails with ErrNameTaken when a
	// live endpoint already has that name.
	Attach(a Attachment) (Endpoint, error)
}

// Endpoint is one node's handle on a Network.
type Endpoint interface {
	// Send hands env to the network for env.To. It never blocks on the
	// receiver and is safe for concurrent use. It fails with ErrUnknownNode
	// when env.To does not resolve, ErrTooLarge, ErrMalformed or ErrClosed;
	// a nil error means "sent", not "delivered". It returns the envelope's
	// encoded size. The endpoint owns env from the call on.
	Send(env *messages.Envelope) (size int, err error)
	// Outbox returns a new outbox for the envelopes protocol sends from
	// this node.
	Outbox(protocol string) Outbox
	// Address is where other nodes reach this one (transport detail).
	Address() string
	// Close detaches the node. Sends fail and nothing more is delivered
	// after it returns; it returns when the endpoint's goroutines have exited.
	Close() error
}

// Outbox sends the envelopes one protocol of a node sends. It belongs to one
// goroutine (the protocol's actor). Each envelope is encoded when it is
// sent, so the caller may reuse or change it afterwards; the network may
// hold the encodings until Flush, or until enough are pending (the remote
// network carries what one protocol sends one node in one handler run as
// one Batch). Its errors are Endpoint.Send's.
type Outbox interface {
	// Send sends env (its From and Protocol must be the outbox's) and
	// returns its encoded size.
	Send(env *messages.Envelope) (size int, err error)
	// SendMessage sends m best effort to the protocol on node `to`: the
	// data envelope Send would carry, without building it. m is a protobuf
	// message or a pointer to a struct registered with messages.Register.
	SendMessage(to string, m any) (size int, err error)
	// Flush hands every envelope sent since the last Flush to the network.
	Flush()
}

package actors

import (
	"errors"
	"fmt"
)

// Errors of the runtime. Each is wrapped with the detail that made it
// happen; test with [errors.Is].
var (
	// ErrUnknownProtocol: no protocol of that name runs on the node.
	ErrUnknownProtocol = errors.New("actors: unknown protocol")
	// ErrProtocolExists: Node.Start with a name already running.
	ErrProtocolExists = errors.New("actors: protocol already started")
	// ErrProtocolStopped: the protocol was stopped (too many restarts).
	ErrProtocolStopped = errors.New("actors: protocol stopped")
	// ErrNodeStopped: the node was stopped.
	ErrNodeStopped = errors.New("actors: node stopped")
	// ErrTimeout: a request got no reply in time.
	ErrTimeout = errors.New("actors: request timed out")
	// ErrNoHandler: the receiving protocol has no handler for the type, or
	// none of that kind (a Tell of a type it takes only as a notification
	// or as its own post).
	ErrNoHandler = errors.New("actors: no handler for message type")
	// ErrNotOwner: a Post through a Ref from Node.Ref; only the protocol's
	// own Ref (Context.Ref) posts to it.
	ErrNotOwner = errors.New("actors: only the protocol posts to itself")
	// ErrReplyType: a reply of another type than the requester expects.
	ErrReplyType = errors.New("actors: unexpected reply type")
	// ErrHandlerPanicked: the request's handler panicked; the protocol
	// restarts and the requester gets this instead of waiting for a timeout.
	ErrHandlerPanicked = errors.New("actors: request handler panicked")
	// ErrAnswered: a Reply answered a second time.
	ErrAnswered = errors.New("actors: request already answered")
	// ErrUnanswered: the handler's incarnation ended (a restart, a stop)
	// before it answered the request.
	ErrUnanswered = errors.New("actors: request left unanswered")
	// ErrDeadContext: a Context used after its incarnation ended.
	ErrDeadContext = errors.New("actors: dead Context")
	// ErrWindowFull: too many reliable messages to one node are still
	// unacknowledged (ReliableConfig.MaxInFlight).
	ErrWindowFull = errors.New("actors: reliable send window full")
	// ErrReconfigureRefused: a protocol's OnReconfigure handler refused a
	// new configuration; the protocol keeps the one it had.
	ErrReconfigureRefused = errors.New("actors: reconfiguration refused")
	// ErrWrongChannel: a send on a channel it cannot use (gossip outside
	// Context.Broadcast) or on an unknown channel.
	ErrWrongChannel = errors.New("actors: wrong channel")
	// ErrInvalidConfig: a Config field out of range.
	ErrInvalidConfig = errors.New("actors: invalid configuration")
)

// HandlerError is the failure of a handler that returned an error: the
// protocol restarts with it as the reason.
type HandlerError struct {
	Protocol ProtocolName
	Type     string // what was being handled
	Err      error
}

func (e *HandlerError) Error() string {
	return fmt.Sprintf("protocol %s failed handling %s: %v", e.Protocol, e.Type, e.Err)
}

func (e *HandlerError) Unwrap() error { return e.Err }

package mutex

import "github.com/troupe-dev/troupe/actors"

// ProtocolName is the default name of the Ricart–Agrawala protocol
// (Config.Name changes it, to run several independent critical sections).
const ProtocolName = "mutex"

// Enter asks the protocol for the critical section. Tell it to the
// protocol on the same node (Node.Tell, Ref.Tell, Context.Tell). Requests
// of one node are served one after the other, in the order they arrive;
// each is one Ricart–Agrawala round. [Client] wraps it in a blocking call.
type Enter struct {
	// Done runs once, on the protocol's goroutine: with the grant when the
	// node enters the critical section, or with an error (ErrWithdrawn).
	// It must not block (send to a buffered channel, or Tell a protocol).
	// Nil is not allowed.
	Done func(Grant, error)
}

// Grant names one entry into the critical section: the node and the
// Lamport timestamp of its request, unique together. Release needs it.
type Grant struct {
	Node      string
	Timestamp uint64
}

// Release leaves the critical section. Tell it to the protocol.
type Release struct {
	Grant Grant
	// Done, if not nil, runs once on the protocol's goroutine: nil when the
	// node left the critical section, ErrNotHolder when Grant does not
	// hold it. It must not block.
	Done func(error)
}

// Withdraw takes back an Enter that has not been answered, or releases the
// section if it was granted meanwhile (the requester gave up waiting).
// Enter is the very value that was told. Tell it to the protocol; an Enter
// still waiting is answered ErrWithdrawn.
type Withdraw struct {
	Enter *Enter
}

// Entered is published (an actors notification) on the node when it
// enters the critical section; Exited when it leaves it.
type Entered struct{ Grant Grant }

// Exited is published when the node leaves the critical section.
type Exited struct{ Grant Grant }

// StatusRequest asks the protocol for its [Status] (a request:
// actors.Call or actors.Request).
type StatusRequest struct{ actors.Returns[Status] }

// Status is one node's state of the protocol.
type Status struct {
	Node  string
	State string // "idle", "wanted" (a request is out) or "held"
	// Clock is the highest Lamport timestamp the node has seen or made.
	Clock uint64
	// Timestamp is the current request's (0 when idle).
	Timestamp uint64
	Members   []string // the other members, sorted
	Awaiting  []string // members whose reply the current request waits for, sorted
	Deferred  []string // members whose requests wait for this node to leave, sorted
	Queued    int      // local Enters waiting behind the current one

	Entries      uint64 // entries into the critical section
	RequestsSent uint64 // MutexRequest messages sent (each once; retransmissions are not counted)
	RepliesSent  uint64 // MutexReply messages sent
}

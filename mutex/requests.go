package mutex

import "github.com/troupe-dev/troupe/actors"

// Name is the default name of the Ricart–Agrawala protocol
// (Config.Name changes it, to run several independent critical sections).
const Name actors.ProtocolName = "mutex"

// Enter asks the protocol for the critical section: a request
// (actors.Call from outside the protocols, which [Client.Lock] wraps;
// actors.Request from a protocol) to the protocol on the same node,
// answered with the [Grant] when the node enters, or with ErrWithdrawn.
// Requests of one node are served one after the other, in the order they
// arrive; each is one Ricart–Agrawala round.
//
// A requester that may give up before the grant (a deadline, a timeout)
// gives its Enter a Ticket and, when it gives up, Tells a [Withdraw] with
// it; else a grant nobody receives holds the section for good. An Enter
// whose Ticket is already waiting takes that one's place (which is
// answered ErrWithdrawn): the way to wait on after a request timed out;
// one whose Ticket holds the section is answered with that grant again.
type Enter struct {
	actors.Returns[Grant]
	Ticket *Ticket // nil: the Enter cannot be withdrawn
}

// Ticket names an Enter for [Withdraw]: new(mutex.Ticket), one per wait
// for the section. Only its address matters.
type Ticket struct{ _ byte } // not zero-sized: distinct tickets have distinct addresses

// Grant names one entry into the critical section: the node and the
// Lamport timestamp of its request, unique together. Release needs it.
type Grant struct {
	Node      actors.NodeName
	Timestamp uint64
}

// Release leaves the critical section: a request, answered with the grant
// it ended, or with ErrNotHolder when Grant does not hold the section.
type Release struct {
	actors.Returns[Grant]
	Grant Grant
}

// Withdraw takes back the Enter of Ticket if it has not been answered (it
// is answered ErrWithdrawn), or releases the section if that Enter was
// granted meanwhile (the requester gave up waiting). Tell it to the
// protocol (Node.Tell, Ref.Tell, Context.Tell); an unknown or nil Ticket
// does nothing.
type Withdraw struct {
	Ticket *Ticket
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
	Node  actors.NodeName
	State string // "idle", "wanted" (a request is out) or "held"
	// Clock is the highest Lamport timestamp the node has seen or made.
	Clock uint64
	// Timestamp is the current request's (0 when idle).
	Timestamp uint64
	Members   []actors.NodeName // the other members, sorted
	Awaiting  []actors.NodeName // members whose reply the current request waits for, sorted
	Deferred  []actors.NodeName // members whose requests wait for this node to leave, sorted
	Queued    int               // local Enters waiting behind the current one

	Entries      uint64 // entries into the critical section
	RequestsSent uint64 // MutexRequest messages sent (each once; retransmissions are not counted)
	RepliesSent  uint64 // MutexReply messages sent
}

package consensus

import "github.com/troupe-dev/troupe/actors"

// Name is the name the Raft protocol runs under on every node.
const Name actors.ProtocolName = "raft"

// Op is the operation of a [Request].
type Op int

// The operations of the key-value store.
const (
	OpGet    Op = iota + 1 // linearizable read (ReadIndex)
	OpPut                  // set Key to Value
	OpDelete               // remove Key
	OpCAS                  // set Key to Value if it holds Prev (an absent key never matches)
)

func (o Op) String() string {
	switch o {
	case OpGet:
		return "get"
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpCAS:
		return "cas"
	}
	return "unknown"
}

// Request asks a node's raft protocol for one key-value operation: a
// request (actors.Call from outside the protocols, actors.Request from a
// protocol) to [Name] on the same node, answered with a [Result].
// Any node serves it (writes and reads are forwarded to the leader by
// raft). [KV] wraps it in blocking calls.
//
// A request that fails is answered with an error: one that wraps
// ErrNotApplied (ErrNoQuorum, ErrNoLeader — an *UnavailableError —,
// ErrProposalDropped), ErrInvalidKey, ErrValueTooLarge or ErrBadRequest
// means it was not applied; ErrTimeout (the protocol's own, after
// Config.RequestTimeout) or ErrStopped that it may have been. Wait a
// little longer than Config.RequestTimeout for the answer, or the
// runtime's timeout (actors.ErrTimeout) comes first and the protocol's
// answer, which may know the write was not applied, is lost.
type Request struct {
	actors.Returns[Result]
	Op    Op
	Key   string
	Value []byte // OpPut, OpCAS
	Prev  []byte // OpCAS
}

// Result is the outcome of a Request that did not fail.
type Result struct {
	// OK: the write was applied (for OpCAS: the swap happened; false when
	// the key did not hold Prev), or the read was served.
	OK bool
	// Found: the key existed (OpGet; OpDelete: before the delete; OpCAS:
	// when the swap failed, whether the key exists).
	Found bool
	// Value: OpGet's value; for a failed OpCAS the current value.
	Value []byte
	// Index is the raft log index the write was applied at, or the index
	// the read was served at.
	Index uint64

	token uint64 // a lock operation's fencing token (LockResult.Token)
}

// AdminAction is an operator action on the raft group's membership.
type AdminAction int

// Operator actions. Each is performed by the leader only (else
// NotLeaderError) and one at a time.
const (
	AddVoter       AdminAction = iota + 1 // add a node as a voter (or promote a learner)
	AddLearner                            // add a node as a learner: it replicates but does not vote
	RemoveNode                            // remove a voter or learner
	TransferLeader                        // hand leadership to a voter
)

func (a AdminAction) String() string {
	switch a {
	case AddVoter:
		return "add-voter"
	case AddLearner:
		return "add-learner"
	case RemoveNode:
		return "remove"
	case TransferLeader:
		return "transfer-leader"
	}
	return "unknown"
}

// AdminRequest asks the leader's raft protocol for a membership change or a
// leadership transfer (a request, like [Request]). It is answered with an
// [AdminResult] when the change is applied (the transfer observed), and
// fails with a *NotLeaderError on another node than the leader,
// ErrProposalDropped while another change is in progress, ErrBadRequest,
// ErrTimeout (after Config.RequestTimeout) or ErrStopped.
type AdminRequest struct {
	actors.Returns[AdminResult]
	Action AdminAction
	Node   actors.NodeName
}

// AdminResult is the answer to an AdminRequest that succeeded.
type AdminResult struct {
	Action AdminAction
	Node   actors.NodeName
}

// StatusRequest asks the raft protocol for its [Status] (a request:
// actors.Call or actors.Request).
type StatusRequest struct{ actors.Returns[Status] }

// Status is a node's view of the raft group.
type Status struct {
	Node          actors.NodeName   `json:"node"`
	ID            uint64            `json:"id"`
	State         string            `json:"state"`  // "StateLeader", "StateFollower", "StateCandidate", "StatePreCandidate"
	Leader        actors.NodeName   `json:"leader"` // "" when none is known
	Term          uint64            `json:"term"`
	Commit        uint64            `json:"commit"`
	Applied       uint64            `json:"applied"`
	SnapshotIndex uint64            `json:"snapshot_index"` // the latest snapshot's index (made or received)
	Voters        []actors.NodeName `json:"voters"`         // sorted
	Learners      []actors.NodeName `json:"learners"`       // sorted
	Keys          int               `json:"keys"`           // keys in the local replica

	SnapshotsMade     uint64 `json:"snapshots_made"`     // snapshots this incarnation made
	SnapshotsReceived uint64 `json:"snapshots_received"` // snapshots this incarnation installed from the leader
	Proposals         uint64 `json:"proposals"`          // writes this incarnation proposed
	Dropped           uint64 `json:"dropped"`            // raft messages from other nodes this incarnation refused
	Fenced            uint64 `json:"fenced"`             // copies of writes skipped at apply: proposed in one term, appended in another
	Reproposed        uint64 `json:"reproposed"`         // writes this incarnation proposed again after a leader change

	// Reachable are the voters this node heard from within the last four
	// election timeouts, itself included (the quorum signal,
	// docs/consensus.md); sorted.
	Reachable []actors.NodeName `json:"reachable"`
	// Reason says why Leader is "": "no_quorum" (fewer than a majority of
	// the voters reachable) or "election" (a majority reachable, a vote
	// running). Empty while a leader is known.
	Reason string `json:"reason,omitempty"`
	// Holding: a leader is known but this node has not heard from it
	// within three heartbeats (a leader: from a majority), so it holds
	// writes rather than send them into a cut link; they go once it hears
	// again, or are answered not applied.
	Holding bool `json:"holding,omitempty"`
	// Followers is the leader's replication progress of every other voter
	// and learner, in name order; empty on a node that does not lead.
	Followers []Follower `json:"followers,omitempty"`
}

// Follower is the leader's view of one follower's replication.
type Follower struct {
	Node  actors.NodeName `json:"node"`
	Match uint64          `json:"match"` // the highest log index known replicated on it
	Next  uint64          `json:"next"`  // the next index the leader sends it
	// Lag is the leader's commit index minus Match: how far it is
	// behind (0 when caught up).
	Lag     uint64 `json:"lag"`
	State   string `json:"state"`   // StateProbe, StateReplicate or StateSnapshot
	Learner bool   `json:"learner"` // a learner: it replicates without voting
	Active  bool   `json:"active"`  // the leader heard from it within an election timeout
}

// LeadershipChanged is published (actors notification) on a node when the
// leader it believes in changes, including to none.
type LeadershipChanged struct {
	Leader actors.NodeName // "" while there is no leader
	Term   uint64
}

package consensus

import "github.com/troupe-dev/troupe/actors"

// Name is the name the Raft protocol runs under on every node.
const Name actors.ProtocolName = "raft"

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
// leadership transfer (a request: actors.Call or actors.Request). It is answered with an
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
	Keys          int               `json:"keys"`           // entries in the local replica's hosted machines that count them (Sizer: kv's keys)

	SnapshotsMade     uint64 `json:"snapshots_made"`     // snapshots this incarnation made
	SnapshotsReceived uint64 `json:"snapshots_received"` // snapshots this incarnation installed from the leader
	Proposals         uint64 `json:"proposals"`          // commands this incarnation proposed
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

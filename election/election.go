package election

import (
	"github.com/troupe-dev/troupe/actors"
)

// Name is the name every elector runs under, so that other
// protocols find the leader without knowing the algorithm.
const Name actors.ProtocolName = "election"

// Elector is a leader-election protocol. Whatever its algorithm, an
// Elector runs as the protocol named Name and:
//
//   - publishes a *LeaderChanged notification on its node every time the
//     leader it believes in changes (including to "no leader", Leader ""),
//     with the term (epoch) of that leadership;
//   - answers a LeaderRequest with the current Leader.
//
// Terms only grow: a leadership of a higher term supersedes any of a lower
// one, so a protocol that acts for a leader can tag what it does with the
// term and refuse work from stale terms. Bully is one Elector; the Raft
// group's elector (consensus) is another.
type Elector interface {
	actors.Protocol
	// Algorithm names the algorithm, e.g. "bully" or "raft".
	Algorithm() string
}

// LeaderChanged is published on a node when its elector's belief changes.
type LeaderChanged struct {
	Leader actors.NodeName // "" while there is no leader (it failed, an election runs)
	Term   uint64
}

// LeaderRequest asks the elector for the current leader.
type LeaderRequest struct{ actors.Returns[Leader] }

// Leader is the answer to a LeaderRequest.
type Leader struct {
	Name actors.NodeName // "" when no leader is known
	Term uint64
}

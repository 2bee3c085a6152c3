package election

import (
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
)

// Raft is the Elector whose leader is the leader of the node's raft group
// (package consensus) and whose term is the raft term. It holds no
// algorithm of its own: it follows the "raft" protocol's
// [consensus.LeadershipChanged] notifications and republishes them as
// [LeaderChanged], so the leader is whoever raft elected with pre-vote and
// check-quorum (a leader cut off from a majority steps down after an
// election timeout; at most one leader per term). Start the raft protocol
// on the node too; this protocol waits for it.
//
// Nodes outside the raft group learn the leader only if they run the raft
// protocol as learners.
type Raft struct {
	leader  actors.NodeName
	term    uint64
	settled bool // a notification has been seen: a later status reply is stale
}

var _ Elector = (*Raft)(nil)

// raftRetry is how often the elector asks for the raft protocol's status
// while it is not running yet.
const raftRetry = 100 * time.Millisecond

type askRaft struct{}

// Name is election.Name.
func (r *Raft) Name() actors.ProtocolName { return Name }

// Algorithm is "raft".
func (r *Raft) Algorithm() string { return "raft" }

// Init subscribes to the raft protocol's leadership and asks it for the
// current one.
func (r *Raft) Init(ctx *actors.Context) error {
	actors.OnNotification(ctx, r.onLeadership)
	actors.OnRequest(ctx, func(*actors.Context, LeaderRequest) (Leader, error) {
		return Leader{Name: r.leader, Term: r.term}, nil
	})
	actors.OnTimer(ctx, func(ctx *actors.Context, _ askRaft) error { return r.ask(ctx) })
	return r.ask(ctx)
}

func (r *Raft) ask(ctx *actors.Context) error {
	err := actors.Request(ctx, consensus.Name, consensus.StatusRequest{}, 0,
		func(ctx *actors.Context, st consensus.Status, err error) error {
			if err != nil {
				ctx.After(raftRetry, askRaft{})
				return nil
			}
			if !r.settled {
				r.set(ctx, st.Leader, st.Term)
			}
			return nil
		})
	if err != nil { // the raft protocol is not started yet
		ctx.After(raftRetry, askRaft{})
	}
	return nil
}

func (r *Raft) onLeadership(ctx *actors.Context, n *consensus.LeadershipChanged) error {
	r.settled = true
	r.set(ctx, n.Leader, n.Term)
	return nil
}

// set publishes LeaderChanged when the belief changes; terms never go back.
func (r *Raft) set(ctx *actors.Context, leader actors.NodeName, term uint64) {
	if term < r.term || (leader == r.leader && term == r.term) {
		return
	}
	r.leader, r.term = leader, term
	ctx.Notify(&LeaderChanged{Leader: leader, Term: term})
}

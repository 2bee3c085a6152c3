package jobs

import (
	"fmt"
	"slices"
	"strings"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
)

// Why a job cannot make progress, as its contact sees it (Status.Waiting).
//
// The contact hands its jobs to the leader it follows and the leader
// schedules their parts; without a leader nothing is split or assigned,
// and a job used to sit "pending 0/0" with no word why. The contact knows
// three reasons:
//
//   - no leader is known: the elector says none. When the node runs the
//     raft group (the raft elector), its quorum view tells a lost quorum
//     (no leader can be elected on this side) from an election under way;
//   - the leader it follows is not a live member (membership reports it
//     failed or gone, the elector has not moved on yet);
//   - messages to the leader do not get through (they wait in the outbox:
//     its address is unknown or it does not acknowledge).
//
// The reason is worked out when the status is asked for, from the
// contact's state then, so it clears as soon as the cause does.

// waitingForLeader is the reason while no leader is known and nothing
// more is known (the Bully elector, or the raft group not answered yet).
const waitingForLeader = "waiting for a leader"

// quorumView is the raft group's answer to why it has no leader: the last
// consensus.Status this node's raft protocol gave while the jobs protocol
// followed no leader. known is false while there is none (no raft
// protocol on this node, or a leader is known).
type quorumView struct {
	known     bool
	reason    string            // "no_quorum" or "election" (consensus.Status.Reason)
	reachable []actors.NodeName // voters reachable, sorted
	voters    []actors.NodeName // all voters, sorted
}

// waitingFor is why job o cannot make progress now, or "" when it can (or
// needs no leader: it ended, or all its results are in and it merges).
func (p *protocol) waitingFor(o *owned) string {
	if o.state.Ended() || o.merging {
		return ""
	}
	return p.waiting()
}

// waiting is why this node's jobs cannot make progress, or "".
func (p *protocol) waiting() string {
	switch {
	case p.leader == "":
		return p.quorum.why()
	case p.leader == p.self:
		return ""
	case !p.live[p.leader]:
		return fmt.Sprintf("waiting for a leader: the leader %s is not a live member (failed or left)", p.leader)
	case len(p.outbox[p.leader]) > 0:
		return fmt.Sprintf("waiting for a leader: the leader %s is unreachable (%d messages queued for it)", p.leader, len(p.outbox[p.leader]))
	}
	return ""
}

// why says why there is no leader, in the words of the raft group when it
// answered.
func (q quorumView) why() string {
	if !q.known {
		return waitingForLeader
	}
	reach := 0
	for _, n := range q.reachable {
		if slices.Contains(q.voters, n) {
			reach++
		}
	}
	switch q.reason {
	case "no_quorum":
		return fmt.Sprintf("no quorum: %d of %d voters reachable (%s), a majority is %d; no leader can be elected until more are back",
			reach, len(q.voters), joinNames(q.reachable), len(q.voters)/2+1)
	case "election":
		return fmt.Sprintf("%s: an election is running (%d of %d voters reachable)", waitingForLeader, reach, len(q.voters))
	}
	return waitingForLeader
}

// waitingJobs reports whether a job of this contact needs a leader.
func (p *protocol) waitingJobs() bool {
	for _, o := range p.owned {
		if !o.state.Ended() && !o.merging {
			return true
		}
	}
	return false
}

// askQuorum asks this node's raft protocol, if it runs one, why there is
// no leader: on every tick while this node follows none and a job waits,
// one request at a time. The answer is cached for the status requests.
func (p *protocol) askQuorum(ctx *actors.Context) {
	if p.leader != "" || p.quorumAsking || !p.waitingJobs() {
		return
	}
	err := actors.Request(ctx, consensus.Name, consensus.StatusRequest{}, p.cfg.Tick*10,
		func(_ *actors.Context, st consensus.Status, err error) error {
			p.quorumAsking = false
			if err != nil || p.leader != "" || st.Leader != "" {
				return nil // no view (stopped, slow), or a leader meanwhile
			}
			p.quorum = quorumView{known: true, reason: st.Reason, reachable: st.Reachable, voters: st.Voters}
			return nil
		})
	// An error: no raft protocol on this node (the Bully elector); the
	// reason stays "waiting for a leader".
	p.quorumAsking = err == nil
}

// joinNames lists node names for a message.
func joinNames(names []actors.NodeName) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

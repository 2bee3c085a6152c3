package consensus

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.etcd.io/raft/v3"

	"github.com/troupe-dev/troupe/actors"
)

// The quorum signal. A node counts a voter as reachable when a raft message
// from it arrived within the last four election timeouts (reachWindow,
// counted in raft ticks, as raft counts its timeouts);
// itself always. Every peer that can reach it sends something that often:
// a leader's heartbeats, a follower's heartbeat responses, the pre-votes of
// a node without a leader and the answers to them. A follower hears only
// its leader; it needs no more, because a leader that has not heard from a
// majority within an election timeout steps down (CheckQuorum). So, with
// no leader known, fewer than a majority reachable is a lost quorum
// (ErrNoQuorum) and a majority is an election running (ErrNoLeader); the
// count settles within reachWindow of a partition.

// electionTicks is raft's election timeout at its shortest, in ticks.
func (p *Raft) electionTicks() uint64 { return uint64(p.cfg.ElectionTicks) }

// reachWindow is how recently a voter must have been heard from to count
// as reachable: beyond the longest randomised election timeout, so that
// nodes of a minority, which hear each other only through pre-votes, keep
// counting each other.
func (p *Raft) reachWindow() uint64 { return 4 * p.electionTicks() }

// voterIDs are the voters of the configuration (both halves of a joint one).
func (p *Raft) voterIDs() []uint64 {
	ids := slices.Concat(p.confState.Voters, p.confState.VotersOutgoing)
	slices.Sort(ids)
	return slices.Compact(ids)
}

// reachability returns the voters heard from within window (this node
// included, when a voter) and all voters, by name, sorted.
func (p *Raft) reachability(window uint64) (reachable, voters []actors.NodeName) {
	reachable, voters = []actors.NodeName{}, []actors.NodeName{}
	for _, id := range p.voterIDs() {
		name := p.nameOf(id)
		voters = append(voters, name)
		if t, ok := p.lastHeard[id]; id == p.id || ok && p.ticks-t <= window {
			reachable = append(reachable, name)
		}
	}
	slices.Sort(reachable)
	slices.Sort(voters)
	return reachable, voters
}

// leaderReachable reports whether a write proposed now would reach lead:
// a follower heard from it within heardTicks; a leader heard from a
// majority of the voters within them.
func (p *Raft) leaderReachable(lead uint64) bool {
	if lead != p.id {
		t, ok := p.lastHeard[lead]
		return ok && p.ticks-t <= p.heardTicks()
	}
	// Counted without names or allocations: it runs at every Ready with
	// writes queued.
	cs, reach, voters := p.confState, 0, 0
	count := func(ids []uint64) {
		for _, id := range ids {
			voters++
			if t, ok := p.lastHeard[id]; id == p.id || ok && p.ticks-t <= p.heardTicks() {
				reach++
			}
		}
	}
	count(cs.Voters)
	if len(cs.VotersOutgoing) == 0 {
		return reach >= voters/2+1
	}
	// A joint configuration: a majority of each half.
	inReach, inVoters := reach, voters
	reach, voters = 0, 0
	count(cs.VotersOutgoing)
	return inReach >= inVoters/2+1 && reach >= voters/2+1
}

// heardTicks: a leader sends a heartbeat every HeartbeatTicks and a
// follower answers each, so three heartbeats without a word from the
// other side mean the link is likely cut (a write waits; it is not lost).
func (p *Raft) heardTicks() uint64 {
	return min(3*uint64(p.cfg.HeartbeatTicks), p.electionTicks())
}

// unavailable is nil while this node knows a leader, and otherwise why it
// has none: an *UnavailableError.
func (p *Raft) unavailable() error {
	if p.lead != raft.None {
		return nil
	}
	return p.unavailableNow()
}

// unavailableNow is the *UnavailableError this node's reachability gives.
func (p *Raft) unavailableNow() error {
	reach, voters := p.reachability(p.reachWindow())
	cause := ErrNoLeader
	if len(reach) < len(voters)/2+1 {
		cause = ErrNoQuorum
	}
	return &UnavailableError{Node: p.node, Cause: cause, Reachable: reach, Voters: voters}
}

// settleHeld answers, once this node knows no leader and reaches no
// majority, the writes it holds without a live copy (ErrNotApplied) and
// the reads that wait for a read index (the *UnavailableError): no leader
// can be elected on its side, so they would only wait for their timeout.
func (p *Raft) settleHeld() {
	if p.lead != raft.None || len(p.unproposed) == 0 && len(p.unissued) == 0 && len(p.reads) == 0 {
		return
	}
	err := p.unavailableNow()
	if !errors.Is(err, ErrNoQuorum) {
		return
	}
	why := strings.TrimPrefix(err.Error(), "consensus: not applied: ")
	for _, w := range p.unproposed {
		if p.pending[w.cmd.Seq] == w && w.queued {
			delete(p.pending, w.cmd.Seq)
			p.writeDone(w, nil, fmt.Errorf("%w: %s held the write and proposed no copy of it: %s", ErrNotApplied, p.node, why))
		}
	}
	clear(p.unproposed)
	p.unproposed = p.unproposed[:0]
	reads := slices.Clone(p.unissued)
	for _, seq := range slices.Sorted(maps.Keys(p.reads)) {
		reads = append(reads, p.reads[seq].reads...)
	}
	clear(p.reads)
	p.unissued = nil
	for _, r := range reads {
		p.readDone(r, 0, err)
	}
}

// requeueDead runs once an entry of a later term than before has applied:
// a pending write whose live copy is of an earlier term and has not
// applied never will (the term fence), so it is queued to be proposed
// again, to the leader of now.
func (p *Raft) requeueDead(ctx *actors.Context) {
	n := 0
	for _, seq := range slices.Sorted(maps.Keys(p.pending)) {
		if w := p.pending[seq]; w.term != 0 && w.term < p.appliedTerm && !w.lost {
			p.queue(w)
			n++
		}
	}
	if n > 0 {
		p.reproposed += uint64(n)
		p.log.Debug().Int("writes", n).Uint64("term", p.appliedTerm).Msg("proposing again the writes whose copies the leader change left behind")
		p.kick(ctx)
	}
}

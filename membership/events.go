package membership

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/troupe-dev/troupe/actors"
)

// State is a member's state in one node's view.
type State int

const (
	// Alive members answer probes.
	Alive State = iota
	// Suspect members missed a probe of this node and have not yet been
	// declared failed; they may still refute the suspicion.
	Suspect
	// Failed members stopped answering and were declared dead.
	Failed
	// Left members announced their departure (a graceful leave).
	Left
)

func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case Suspect:
		return "suspect"
	case Failed:
		return "failed"
	case Left:
		return "left"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Member is one node as a membership view sees it.
type Member struct {
	Name actors.NodeName
	// Address is the node's protoactor remote address (empty on the sim
	// network).
	Address string
	// Kinds are the protoactor cluster kinds the node hosts.
	Kinds []string
	// Incarnation is SWIM's incarnation number of the member: the member
	// raises it to refute a suspicion, and a higher one overrides older
	// news about the member.
	Incarnation uint32
	// Generation changes each time the node starts: a member that comes
	// back with another generation is a restarted node, whose state is
	// new.
	Generation uint64
	// Gossip is the node's SWIM address (host:port).
	Gossip string
	State  State
}

func (m Member) String() string {
	return fmt.Sprintf("%s(%s, generation %d, incarnation %d)", m.Name, m.State, m.Generation, m.Incarnation)
}

func (m Member) clone() Member {
	m.Kinds = slices.Clone(m.Kinds)
	return m
}

// Event is a change of membership. Each is published to protocols as a
// notification of its own type (subscribe with actors.OnNotification).
type Event interface {
	// Of is the member the event is about, in its new state.
	Of() Member
}

type (
	// MemberJoined: a node joined, or this node learned of it, or a node
	// came back (after failing or leaving, or restarted: a new
	// generation).
	MemberJoined struct{ Member Member }
	// MemberSuspect: this node suspects the member: its own probe of the
	// member got no ack, direct or indirect, or it learnt another node's
	// suspicion by gossip (ByGossip). The member may still refute it
	// (MemberUpdated with Refuted) before it is confirmed (MemberFailed).
	MemberSuspect struct {
		Member Member
		// ByGossip: another node raised the suspicion and this one learnt
		// it from gossip or a state sync; false when this node's probe
		// raised it.
		ByGossip bool
	}
	// MemberFailed: the member was declared dead, or it restarted before
	// it was (its old generation is reported failed before the new one
	// joins).
	MemberFailed struct{ Member Member }
	// MemberLeft: the member left gracefully.
	MemberLeft struct{ Member Member }
	// MemberUpdated: the member's metadata changed (its kinds or
	// address), or it refuted a suspicion (Refuted).
	MemberUpdated struct {
		Member Member
		// Refuted: the member announced itself alive with a higher
		// incarnation (Member.Incarnation is the new one), which clears a
		// suspicion: this node's, if the view held it Suspect, or one
		// this node had not heard of.
		Refuted bool
	}
)

func (e *MemberJoined) Of() Member  { return e.Member }
func (e *MemberSuspect) Of() Member { return e.Member }
func (e *MemberFailed) Of() Member  { return e.Member }
func (e *MemberLeft) Of() Member    { return e.Member }
func (e *MemberUpdated) Of() Member { return e.Member }

// View is one node's membership at one moment.
type View struct {
	Self    Member
	Members []Member // every member ever seen, self included, by name
}

// Live lists the members that are alive or suspect, by name.
func (v View) Live() []Member {
	var out []Member
	for _, m := range v.Members {
		if m.State == Alive || m.State == Suspect {
			out = append(out, m)
		}
	}
	return out
}

// LiveNames lists the names of the live members.
func (v View) LiveNames() []actors.NodeName {
	var out []actors.NodeName
	for _, m := range v.Live() {
		out = append(out, m.Name)
	}
	return out
}

// Get finds a member by name.
func (v View) Get(name actors.NodeName) (Member, bool) {
	i := slices.IndexFunc(v.Members, func(m Member) bool { return m.Name == name })
	if i < 0 {
		return Member{}, false
	}
	return v.Members[i], true
}

func (e *MemberJoined) String() string { return "joined " + e.Member.String() }
func (e *MemberSuspect) String() string {
	if e.ByGossip {
		return "suspect " + e.Member.String() + " by gossip"
	}
	return "suspect " + e.Member.String()
}
func (e *MemberFailed) String() string { return "failed " + e.Member.String() }
func (e *MemberLeft) String() string   { return "left " + e.Member.String() }
func (e *MemberUpdated) String() string {
	if e.Refuted {
		return "refuted " + e.Member.String()
	}
	return "updated " + e.Member.String()
}

// with returns a copy of v in which mem replaces the member of its name,
// or is added (the members then sorted by name); v itself is not changed,
// so views handed out earlier stay as they were.
func (v View) with(mem Member) View {
	out := View{Self: v.Self, Members: slices.Clone(v.Members)}
	if mem.Name == v.Self.Name {
		out.Self = mem
	}
	if i := slices.IndexFunc(out.Members, func(m Member) bool { return m.Name == mem.Name }); i >= 0 {
		out.Members[i] = mem
		return out
	}
	out.Members = append(out.Members, mem)
	slices.SortStableFunc(out.Members, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

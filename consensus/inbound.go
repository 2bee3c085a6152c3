package consensus

import (
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/confchange"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// A raft message from another node is checked before raft steps it (DESIGN
// §7): etcd raft trusts its input and panics on some of it — a commit index
// beyond its log (raftLog.commitTo), appended entries that would rewrite
// committed ones (raftLog.maybeAppend), a snapshot whose configuration does
// not restore (raft.restore), a short read-index context
// (readOnly.recvAck), an empty proposal (stepLeader), a message it would
// have to forward with its term set (raft.send) — and takes other input at
// its word: an acknowledgement of entries the leader never had counts
// towards a commit. check refuses all of these, and whatever the runtime
// could not have sent: a message whose sender is not in the group's
// configuration or is not the node that sent it.

// wireTypes are the message types one raft node sends another: the local
// ones (raft.IsLocalMsg) and MsgForgetLeader never travel.
var wireTypes = map[pb.MessageType]bool{
	pb.MsgApp: true, pb.MsgAppResp: true, pb.MsgSnap: true,
	pb.MsgHeartbeat: true, pb.MsgHeartbeatResp: true,
	pb.MsgVote: true, pb.MsgVoteResp: true, pb.MsgPreVote: true, pb.MsgPreVoteResp: true,
	pb.MsgProp: true, pb.MsgReadIndex: true, pb.MsgReadIndexResp: true,
	pb.MsgTransferLeader: true, pb.MsgTimeoutNow: true,
}

// forwarded reports whether raft forwards messages of type t on behalf of
// another node: a follower hands the leader its proposals and read-index
// requests (and leadership transfers) with the original sender's id, so
// their From may name any member, not only the node that sent them.
func forwarded(t pb.MessageType) bool {
	return t == pb.MsgProp || t == pb.MsgReadIndex || t == pb.MsgTransferLeader
}

// isMember reports whether id is in the configuration this node applied:
// voters, learners, and both halves of a joint configuration.
func (p *Raft) isMember(id uint64) bool {
	cs := p.confState
	return slices.Contains(cs.Voters, id) || slices.Contains(cs.Learners, id) ||
		slices.Contains(cs.VotersOutgoing, id) || slices.Contains(cs.LearnersNext, id)
}

// noConfig reports whether this node has no configuration yet: a node
// joining a group learns it from the leader's first snapshot, and a group
// bootstrapping applies it from its first entries.
func (p *Raft) noConfig() bool {
	cs := p.confState
	return len(cs.Voters) == 0 && len(cs.Learners) == 0 && len(cs.VotersOutgoing) == 0
}

// checkSender refuses a message whose From is not the sending node, or
// (for a forwarded type) not a member; and any message from outside the
// configuration.
func (p *Raft) checkSender(from actors.NodeName, m *pb.Message) error {
	id, sender := m.GetFrom(), ID(from)
	switch {
	case m.GetTo() != p.id:
		return fmt.Errorf("addressed to raft id %x; this node is %x (%s)", m.GetTo(), p.id, p.node)
	case !wireTypes[m.GetType()]:
		return fmt.Errorf("type %s does not travel between nodes", m.GetType())
	case forwarded(m.GetType()) && id != sender:
		if p.noConfig() || !p.isMember(id) {
			return fmt.Errorf("a %s forwarded on behalf of raft id %x, which is not a member of the configuration", m.GetType(), id)
		}
		return nil
	case id != sender:
		return fmt.Errorf("from raft id %x, but sent by %s (raft id %x)", id, from, sender)
	case id == p.id:
		return fmt.Errorf("from this node's own raft id %x", id)
	case !p.noConfig() && !p.isMember(id):
		return fmt.Errorf("from %s (raft id %x), which is not a member of the configuration (voters %x, learners %x)",
			from, id, p.confState.Voters, p.confState.Learners)
	}
	return nil
}

// checkContent refuses what etcd raft would panic on, or would take at its
// word to the group's harm (see the comment at the top of the file). A
// message of an older term needs no check: raft ignores its content.
func (p *Raft) checkContent(m *pb.Message) error {
	t := m.GetType()
	if forwarded(t) && t != pb.MsgTransferLeader {
		// raft.send panics when it forwards a message whose term is set.
		if m.GetTerm() != 0 {
			return fmt.Errorf("a %s with term %d; a forwarded %s has none", t, m.GetTerm(), t)
		}
	} else if m.GetTerm() == 0 {
		// Term 0 means local to raft.Step: a candidate would take it as its
		// new term.
		return fmt.Errorf("a %s without a term; only MsgProp and MsgReadIndex travel without one", t)
	}
	last := p.last // raft's last index, its write under way or done
	switch t {
	case pb.MsgHeartbeat:
		if m.GetCommit() > last {
			return fmt.Errorf("a heartbeat committing index %d; this node's log ends at %d, and a leader commits on a follower at most what it acknowledged", m.GetCommit(), last)
		}
		if n := len(m.GetContext()); n != 0 && n != 8 {
			return fmt.Errorf("a heartbeat with a %d-byte context; raft's is 0 or 8 bytes", n)
		}
	case pb.MsgHeartbeatResp:
		if n := len(m.GetContext()); n != 0 && n != 8 {
			return fmt.Errorf("a heartbeat response with a %d-byte context; raft's is 0 or 8 bytes", n)
		}
	case pb.MsgApp:
		return checkAppend(m)
	case pb.MsgAppResp:
		if m.GetIndex() > last {
			return fmt.Errorf("an append response for index %d; this node's log ends at %d", m.GetIndex(), last)
		}
		if m.GetReject() && m.GetRejectHint() > m.GetIndex() {
			return fmt.Errorf("an append rejection hinting at index %d, past the rejected index %d", m.GetRejectHint(), m.GetIndex())
		}
	case pb.MsgSnap:
		return p.checkSnapshot(m)
	case pb.MsgProp:
		return p.checkProposal(m.GetEntries())
	case pb.MsgReadIndex:
		if len(m.GetEntries()) != 1 {
			return fmt.Errorf("a read-index request with %d entries; it carries exactly one, its context", len(m.GetEntries()))
		}
	case pb.MsgTransferLeader:
		// A follower forwards it to the leader with its term set, which
		// raft.send refuses with a panic; a leader is the one to ask.
		if st := p.rn.BasicStatus(); st.RaftState != raft.StateLeader {
			return fmt.Errorf("a leadership transfer to raft id %x sent to a %s; only the leader takes one", m.GetFrom(), st.RaftState)
		}
	}
	return nil
}

// checkAppend checks that an append's entries follow its previous entry:
// consecutive indexes, terms never decreasing and never past the leader's.
func checkAppend(m *pb.Message) error {
	prevIndex, prevTerm := m.GetIndex(), m.GetLogTerm()
	if prevTerm > m.GetTerm() {
		return fmt.Errorf("an append after an entry of term %d from a leader of term %d", prevTerm, m.GetTerm())
	}
	for i, e := range m.GetEntries() {
		if e.GetIndex() != prevIndex+1 || e.GetTerm() < prevTerm || e.GetTerm() > m.GetTerm() {
			return fmt.Errorf("an append whose entry %d is (index %d, term %d) after (index %d, term %d) from a leader of term %d; entries are consecutive, their terms never decrease nor pass the leader's",
				i, e.GetIndex(), e.GetTerm(), prevIndex, prevTerm, m.GetTerm())
		}
		prevIndex, prevTerm = e.GetIndex(), e.GetTerm()
	}
	return nil
}

// checkProposal checks entries a follower forwards: at least one, each one
// a command this protocol can apply (a format-2 RaftEntry whose commands
// name hosted machines), or a configuration change raft can decode
// (stepLeader panics on one it cannot). A command that does not decode
// would be committed, and no node could apply it.
func (p *Raft) checkProposal(entries []*pb.Entry) error {
	if len(entries) == 0 {
		return fmt.Errorf("an empty proposal; a proposal carries at least one entry")
	}
	for i, e := range entries {
		var err error
		switch e.GetType() {
		case pb.EntryNormal:
			if len(e.GetData()) > 0 {
				var entry *messages.RaftEntry
				if entry, err = decodeRaftEntry(e.GetIndex(), e.GetData()); err == nil {
					for _, c := range entry.Commands {
						if _, ok := p.byName[c.Machine]; !ok {
							err = fmt.Errorf("a command to machine %q, which is not hosted (hosted: %v)", c.Machine, p.machineNames())
							break
						}
					}
				}
			}
		case pb.EntryConfChange:
			err = proto.Unmarshal(e.GetData(), &pb.ConfChange{})
		case pb.EntryConfChangeV2:
			err = proto.Unmarshal(e.GetData(), &pb.ConfChangeV2{})
		default:
			err = fmt.Errorf("unknown entry type %d", e.GetType())
		}
		if err != nil {
			return fmt.Errorf("a proposal whose entry %d (%s) does not decode: %v", i, e.GetType(), err)
		}
	}
	return nil
}

// checkSnapshot checks a snapshot before raft installs it: metadata of the
// sender's term at most, a configuration raft can restore (raft.restore
// panics otherwise), and data every hosted machine can restore (each
// section restored into a throwaway machine), with names that are
// node names and match their ids — a snapshot this node cannot restore
// would be written to the data dir and stop it at every start.
func (p *Raft) checkSnapshot(m *pb.Message) error {
	s := m.GetSnapshot()
	md := s.GetMetadata()
	if s == nil || md == nil {
		return fmt.Errorf("a snapshot message without a snapshot")
	}
	if md.GetIndex() == 0 || md.GetTerm() == 0 || md.GetTerm() > m.GetTerm() {
		return fmt.Errorf("a snapshot at (index %d, term %d) from a leader of term %d; both are positive and the term at most the leader's",
			md.GetIndex(), md.GetTerm(), m.GetTerm())
	}
	cs := pb.EnsureConfState(md.GetConfState())
	trk := tracker.MakeProgressTracker(1, 0)
	cfg, prs, err := confchange.Restore(confchange.Changer{Tracker: trk, LastIndex: md.GetIndex()}, cs)
	if err != nil {
		return fmt.Errorf("a snapshot whose configuration does not restore: %v", err)
	}
	trk.Config, trk.Progress = cfg, prs
	if err := cs.Equivalent(trk.ConfState()); err != nil {
		return fmt.Errorf("a snapshot whose configuration is not consistent: %v", err)
	}
	var snap messages.RaftSnapshot
	if err := proto.Unmarshal(s.GetData(), &snap); err != nil || snap.Format != dataFormat {
		return fmt.Errorf("a snapshot whose data does not decode as format %d (format %d): %v", dataFormat, snap.Format, err)
	}
	seen := map[string]bool{}
	for _, sec := range snap.Machines {
		h, ok := p.byName[sec.Machine]
		if !ok {
			return fmt.Errorf("a snapshot holding machine %q, which is not hosted (hosted: %v)", sec.Machine, p.machineNames())
		}
		if seen[sec.Machine] {
			return fmt.Errorf("a snapshot holding machine %q twice", sec.Machine)
		}
		seen[sec.Machine] = true
		// Restored into a throwaway machine first: a section the machine
		// cannot restore would be written to the data dir and stop this
		// node at every start.
		if err := h.spec.New(h.env).Restore(sec.Data); err != nil {
			return fmt.Errorf("a snapshot whose section of machine %q does not restore: %v", sec.Machine, err)
		}
	}
	for id, s := range snap.Names {
		name := actors.NodeName(s)
		if err := transport.ValidateName("node", s); err != nil {
			return fmt.Errorf("a snapshot naming raft id %x: %v", id, err)
		}
		if ID(name) != id {
			return fmt.Errorf("a snapshot naming raft id %x %q, whose id is %x", id, name, ID(name))
		}
	}
	return nil
}

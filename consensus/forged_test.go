package consensus_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	raftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
	"github.com/troupe-dev/troupe/transport/sim"
)

// forger sends raft batches into a group as any node it likes: the sim
// hub takes an envelope's From at its word, as a network without mutual
// TLS would.
type forger struct {
	t  *testing.T
	ep transport.Endpoint
}

func newForger(t *testing.T, g *group) *forger {
	t.Helper()
	ep, err := g.c.Hub.Attach(transport.Attachment{Node: "intruder", Deliver: func(*messages.Envelope, int) {}})
	if err != nil {
		t.Fatal(err)
	}
	return &forger{t: t, ep: ep}
}

// send sends one batch of raft messages to `to` as node `as`.
func (f *forger) send(as, to actors.NodeName, msgs ...*raftpb.Message) {
	f.t.Helper()
	b := &messages.RaftBatch{}
	for _, m := range msgs {
		raw, err := proto.Marshal(m)
		if err != nil {
			f.t.Fatal(err)
		}
		b.Messages = append(b.Messages, raw)
	}
	env := &messages.Envelope{From: string(as), To: string(to), Protocol: string(consensus.Name)}
	if err := transport.MarshalPayload(env, b); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.ep.Send(env); err != nil {
		f.t.Fatal(err)
	}
}

func (g *group) others(than actors.NodeName) []actors.NodeName {
	return slices.DeleteFunc(g.c.Names(), func(n actors.NodeName) bool { return n == than })
}

// disturbed describes the raft protocols that restarted, stopped or had a
// message refused by the runtime ("" if none).
func (g *group) disturbed() string {
	var out string
	for _, n := range g.c.Nodes() {
		s := n.Stats().Protocols[consensus.Name]
		if s.Restarts > 0 || s.Stopped || s.Refused > 0 {
			out += fmt.Sprintf(" %s: %d restarts, stopped %v, %d refused by the runtime;", n.Name(), s.Restarts, s.Stopped, s.Refused)
		}
	}
	return out
}

func (g *group) dropped(name actors.NodeName) uint64 {
	st, err := g.status(name)
	if err != nil {
		return 0
	}
	return st.Dropped
}

// TestForgedRaftTrafficIsDropped: messages as if from the leader that etcd
// raft would panic on (a heartbeat committing index 10¹², entries that
// rewrite committed ones, a snapshot that does not restore, a short
// heartbeat context), an acknowledgement of entries the leader never had,
// and a message from a node outside the configuration are dropped and
// counted; the group keeps serving writes and no protocol restarts.
func TestForgedRaftTrafficIsDropped(t *testing.T) {
	actortest.Virtual(t, testForgedRaftTrafficIsDropped)
}

func testForgedRaftTrafficIsDropped(t *testing.T) {
	g := newGroup(t, 3, 11, sim.Faults{}, nil)
	lead := g.leader(5 * time.Second)
	if _, err := g.kv(lead).Put(ctxT(t, 5*time.Second), "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	st, err := g.status(lead)
	if err != nil {
		t.Fatal(err)
	}
	term, commit := st.Term, st.Commit
	f := newForger(t, g)
	msg := func(typ raftpb.MessageType, from, to actors.NodeName) *raftpb.Message {
		return &raftpb.Message{Type: typ.Enum(), From: new(consensus.ID(from)), To: new(consensus.ID(to)), Term: new(term)}
	}
	want := map[actors.NodeName]uint64{}
	followers := g.others(lead)
	for _, fl := range followers {
		for range 16 {
			hb := msg(raftpb.MsgHeartbeat, lead, fl)
			hb.Commit = new(uint64(1e12))
			f.send(lead, fl, hb)
		}
		rewrite := msg(raftpb.MsgApp, lead, fl)
		rewrite.Index, rewrite.LogTerm = new(commit), new(term)
		rewrite.Entries = []*raftpb.Entry{{Index: new(uint64(1)), Term: new(term)}}
		snap := msg(raftpb.MsgSnap, lead, fl)
		snap.Snapshot = &raftpb.Snapshot{Data: []byte{0xff, 0xff}, Metadata: &raftpb.SnapshotMetadata{
			Index: new(uint64(1e12)), Term: new(term),
			ConfState: &raftpb.ConfState{Voters: []uint64{consensus.ID(lead), consensus.ID(followers[0]), consensus.ID(followers[1])}},
		}}
		shortCtx := msg(raftpb.MsgHeartbeat, lead, fl)
		shortCtx.Context = []byte{1, 2, 3}
		f.send(lead, fl, rewrite, snap, shortCtx)
		// Format-2 snapshots whose section the store cannot restore, or
		// of a machine the group does not host.
		for _, sec := range []*messages.MachineSnapshot{{Machine: kv.MachineName, Data: []byte{0xff, 0xff}}, {Machine: "ledger"}} {
			data, err := proto.Marshal(&messages.RaftSnapshot{Format: 2, Machines: []*messages.MachineSnapshot{sec}})
			if err != nil {
				t.Fatal(err)
			}
			bad := msg(raftpb.MsgSnap, lead, fl)
			bad.Snapshot = &raftpb.Snapshot{Data: data, Metadata: snap.Snapshot.Metadata}
			f.send(lead, fl, bad)
		}
		// A node outside the configuration, at a higher term.
		outsider := msg(raftpb.MsgHeartbeat, "intruder", fl)
		outsider.Term = new(term + 5)
		f.send("intruder", fl, outsider)
		want[fl] = 16 + 3 + 2 + 1
	}
	ack := msg(raftpb.MsgAppResp, followers[0], lead)
	ack.Index = new(uint64(1e12))
	shortAck := msg(raftpb.MsgHeartbeatResp, followers[0], lead)
	shortAck.Context = []byte{1, 2, 3}
	// Proposals forwarded to the leader: of format 1 (a bare KVCommand),
	// and to a machine the group does not host.
	old, err := proto.Marshal(&messages.KVCommand{Op: messages.KVOp_KV_OP_PUT, Key: "old", Value: []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	unhosted, err := proto.Marshal(&messages.RaftEntry{Format: 2, Commands: []*messages.RaftCommand{{Machine: "ledger", Data: []byte("x"), Term: term}}})
	if err != nil {
		t.Fatal(err)
	}
	var props []*raftpb.Message
	for _, data := range [][]byte{old, unhosted} {
		prop := msg(raftpb.MsgProp, followers[0], lead)
		prop.Term = nil
		prop.Entries = []*raftpb.Entry{{Type: raftpb.EntryNormal.Enum(), Data: data}}
		props = append(props, prop)
	}
	f.send(followers[0], lead, append([]*raftpb.Message{ack, shortAck}, props...)...)
	want[lead] = 4

	actortest.Eventually(t, 10*time.Second, "every forged message handled", func() bool {
		if g.disturbed() != "" {
			return true
		}
		for n, w := range want {
			if g.dropped(n) < w {
				return false
			}
		}
		return true
	})
	if d := g.disturbed(); d != "" {
		t.Fatalf("forged raft traffic disturbed the group:%s", d)
	}
	for n, w := range want {
		if got := g.dropped(n); got != w {
			t.Errorf("%s dropped %d raft messages, want %d", n, got, w)
		}
	}
	for _, n := range g.c.Names() {
		if _, err := g.kv(n).Put(ctxT(t, 5*time.Second), "after-"+string(n), []byte("1")); err != nil {
			t.Fatalf("write through %s after the forged traffic: %v", n, err)
		}
	}
	if d := g.disturbed(); d != "" {
		t.Fatalf("forged raft traffic disturbed the group:%s", d)
	}
}

// TestForwardedProposalFromAMemberIsApplied: a follower forwards proposals
// to the leader with the id of the node that made them (etcd raft's
// stepFollower), which need not be the follower itself; such a proposal,
// from a member, is applied.
func TestForwardedProposalFromAMemberIsApplied(t *testing.T) {
	actortest.Virtual(t, testForwardedProposalFromAMemberIsApplied)
}

func testForwardedProposalFromAMemberIsApplied(t *testing.T) {
	g := newGroup(t, 3, 12, sim.Faults{}, nil)
	lead := g.leader(5 * time.Second)
	followers := g.others(lead)
	cmd, err := proto.Marshal(&messages.KVCommand{Op: messages.KVOp_KV_OP_PUT, Key: "forwarded", Value: []byte("yes")})
	if err != nil {
		t.Fatal(err)
	}
	st, err := g.status(lead)
	if err != nil {
		t.Fatal(err)
	}
	// The command applies from an entry of the term it names (the term
	// fence), so the forger names the leader's.
	data, err := proto.Marshal(&messages.RaftEntry{Format: 2, Commands: []*messages.RaftCommand{{Machine: kv.MachineName, Data: cmd, Term: st.Term}}})
	if err != nil {
		t.Fatal(err)
	}
	prop := &raftpb.Message{Type: raftpb.MsgProp.Enum(), From: new(consensus.ID(followers[1])), To: new(consensus.ID(lead)),
		Entries: []*raftpb.Entry{{Type: raftpb.EntryNormal.Enum(), Data: data}}}
	newForger(t, g).send(followers[0], lead, prop)
	kc := g.kv(lead)
	actortest.Eventually(t, 10*time.Second, "the forwarded proposal applied", func() bool {
		v, found, err := kc.Get(ctxT(t, time.Second), "forwarded")
		return err == nil && found && string(v) == "yes"
	})
	if n := g.dropped(lead); n != 0 {
		t.Errorf("the leader dropped %d raft messages, want 0", n)
	}
}

// TestHonestTrafficIsNeverDropped: under loss, duplication and reordering,
// with writes and reads through every node, no node drops a raft message
// of its peers.
func TestHonestTrafficIsNeverDropped(t *testing.T) {
	actortest.Virtual(t, testHonestTrafficIsNeverDropped)
}

func testHonestTrafficIsNeverDropped(t *testing.T) {
	g := newGroup(t, 3, 13, sim.Faults{Latency: time.Millisecond, Jitter: 2 * time.Millisecond, Loss: 0.05, Duplicate: 0.05, Reorder: 0.1}, nil)
	g.leader(10 * time.Second)
	for i := range 30 {
		n := g.c.Names()[i%3]
		kc := g.kv(n)
		actortest.Eventually(t, 10*time.Second, "a write", func() bool {
			_, err := kc.Put(ctxT(t, 2*time.Second), fmt.Sprintf("k%d", i%7), []byte{byte(i)})
			return err == nil
		})
		if _, _, err := kc.Get(ctxT(t, 5*time.Second), "k0"); err != nil {
			t.Logf("read through %s: %v", n, err)
		}
	}
	for _, n := range g.c.Names() {
		st, err := g.status(n)
		if err != nil {
			t.Fatal(err)
		}
		if st.Dropped != 0 {
			t.Errorf("%s dropped %d raft messages of its peers, want 0", n, st.Dropped)
		}
	}
}

// TestForwardedReadIndexFromAMemberIsAnswered: a follower (a former leader
// among them) forwards a read-index request with the id of the node that
// asked; the leader steps it and answers that node, and neither drops it.
func TestForwardedReadIndexFromAMemberIsAnswered(t *testing.T) {
	actortest.Virtual(t, testForwardedReadIndexFromAMemberIsAnswered)
}

func testForwardedReadIndexFromAMemberIsAnswered(t *testing.T) {
	g := newGroup(t, 3, 15, sim.Faults{}, nil)
	lead := g.leader(5 * time.Second)
	followers := g.others(lead)
	rctx := make([]byte, 16) // an epoch no incarnation has: the asker ignores the answer
	req := &raftpb.Message{Type: raftpb.MsgReadIndex.Enum(), From: new(consensus.ID(followers[1])), To: new(consensus.ID(lead)),
		Entries: []*raftpb.Entry{{Data: rctx}}}
	newForger(t, g).send(followers[0], lead, req)
	// The group still serves reads and writes through every node, and
	// nobody dropped anything.
	for _, n := range g.c.Names() {
		if _, err := g.kv(n).Put(ctxT(t, 5*time.Second), "after-"+string(n), []byte("1")); err != nil {
			t.Fatalf("write through %s: %v", n, err)
		}
		if _, _, err := g.kv(n).Get(ctxT(t, 5*time.Second), "after-"+string(n)); err != nil {
			t.Fatalf("read through %s: %v", n, err)
		}
	}
	for _, n := range g.c.Names() {
		if d := g.dropped(n); d != 0 {
			t.Errorf("%s dropped %d raft messages, want 0 (a forwarded read index is honest traffic)", n, d)
		}
	}
}

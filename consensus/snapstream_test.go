package consensus_test

import (
	"testing"
	"time"

	raftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
	"github.com/troupe-dev/troupe/transport/sim"
)

// forgedChunk has the fields of a stream chunk (actors.StreamChunkType),
// so the forger can stream into a raft group.
type forgedChunk struct {
	Session, ID, Total, Offset uint64
	Type                       string
	Head, Data                 []byte
}

var _ = messages.Register[forgedChunk]("consensustest.ForgedChunk")

// stream sends a whole stream, in one chunk, to the raft protocol on `to`
// as node `as`.
func (f *forger) stream(as, to actors.NodeName, id uint64, head *messages.RaftBatch, data []byte) {
	f.t.Helper()
	typ, hb, err := transport.Marshal(head)
	if err != nil {
		f.t.Fatal(err)
	}
	st, _ := messages.LookupStruct("consensustest.ForgedChunk")
	b, err := st.Marshal(&forgedChunk{Session: 1, ID: id, Total: uint64(len(data)), Type: typ, Head: hb, Data: data})
	if err != nil {
		f.t.Fatal(err)
	}
	env := &messages.Envelope{From: string(as), To: string(to), Protocol: string(consensus.Name), Type: actors.StreamChunkType, Payload: b}
	if _, err := f.ep.Send(env); err != nil {
		f.t.Fatal(err)
	}
}

func rawMsgs(t *testing.T, msgs ...*raftpb.Message) *messages.RaftBatch {
	t.Helper()
	b := &messages.RaftBatch{}
	for _, m := range msgs {
		raw, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		b.Messages = append(b.Messages, raw)
	}
	return b
}

// TestForgedSnapshotStreamsAreRefused: a snapshot stream whose head is
// not one MsgSnap without its data, or whose data does not restore, is
// refused (the stream, and the raft message: Status.Dropped), and the
// group carries on undisturbed.
func TestForgedSnapshotStreamsAreRefused(t *testing.T) {
	g := newGroup(t, 3, 1, sim.Faults{}, nil)
	lead := g.leader(5 * time.Second)
	victim := g.others(lead)[0]
	st, err := g.status(lead)
	if err != nil {
		t.Fatal(err)
	}
	f := newForger(t, g)
	var voters []uint64
	for _, n := range g.c.Names() {
		voters = append(voters, consensus.ID(n))
	}
	snap := func(data []byte) *raftpb.Message {
		return &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: new(consensus.ID(lead)), To: new(consensus.ID(victim)), Term: new(st.Term),
			Snapshot: &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{Index: new(st.Commit + 100), Term: new(st.Term),
				ConfState: &raftpb.ConfState{Voters: voters}}}}
	}
	app := &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: new(consensus.ID(lead)), To: new(consensus.ID(victim)), Term: new(st.Term)}
	before := g.dropped(victim)
	f.stream(lead, victim, 1, rawMsgs(t, snap(nil), snap(nil)), []byte("x"))              // two messages
	f.stream(lead, victim, 2, rawMsgs(t, app), []byte("x"))                               // not a snapshot
	f.stream(lead, victim, 3, rawMsgs(t, snap([]byte("inside"))), []byte("x"))            // data in the head
	f.stream(lead, victim, 4, &messages.RaftBatch{Messages: [][]byte{{0xff, 0xff}}}, nil) // a head that does not decode
	f.stream(lead, victim, 5, rawMsgs(t, snap(nil)), []byte("not a RaftSnapshot"))        // data that does not restore
	f.stream("node-9", victim, 6, rawMsgs(t, snap(nil)), []byte("x"))                     // from a non-member
	actortest.Eventually(t, 5*time.Second, "six snapshot streams refused", func() bool {
		return raftStreams(g.c.Node(victim)).Refused == 6
	})
	if d := g.dropped(victim) - before; d < 4 {
		t.Errorf("%d raft messages dropped, want at least 4 (the decoded heads)", d)
	}
	if d := g.disturbed(); d != "" {
		t.Fatalf("forged snapshot streams disturbed the group:%s", d)
	}
	if vst, err := g.status(victim); err != nil || vst.SnapshotsReceived != 0 {
		t.Fatalf("%s: %+v, %v; want no snapshot installed", victim, vst, err)
	}
	putAll(t, g, "after", 20)
}

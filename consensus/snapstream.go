package consensus

import (
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/messages"
)

// Snapshots travel as actors streams (Context.SendStream), not as one
// envelope: a snapshot of any size up to actors.StreamConfig.MaxSize
// reaches a follower in chunks, between the group's other traffic, and a
// broken connection resumes the transfer where the follower is. The
// stream's head is a RaftBatch holding the MsgSnap with its data left out;
// the data is the stream's value. The follower puts it back, checks the
// message as any other (checkSnapshot) and steps it; the leader reports
// the snapshot to raft (ReportSnapshot) when the stream ends: finished
// when the follower took it, failed otherwise.

// sendSnapshot streams a MsgSnap to its follower.
func (p *Raft) sendSnapshot(ctx *actors.Context, m *pb.Message) error {
	to := m.GetTo()
	name, ok := p.names[to]
	if !ok {
		return fmt.Errorf("no node name known for raft id %x", to)
	}
	s := m.GetSnapshot()
	head := proto.Clone(m).(*pb.Message) // raft's storage keeps m's snapshot: leave it whole
	head.Snapshot.Data = nil
	raw, err := proto.Marshal(head)
	if err != nil {
		return fmt.Errorf("marshalling a snapshot's head: %w", err)
	}
	if p.snapGen == nil {
		p.snapGen = map[uint64]uint64{}
	}
	p.snapGen[to]++
	gen := p.snapGen[to]
	index := s.GetMetadata().GetIndex()
	p.log.Info().Str("to", string(name)).Uint64("index", index).Int("bytes", len(s.Data)).Msg("streaming a snapshot to a follower")
	return ctx.SendStream(name, &messages.RaftBatch{Messages: [][]byte{raw}}, s.Data, func(ctx *actors.Context, err error) error {
		if errors.Is(err, actors.ErrStreamAborted) || p.snapGen[to] != gen {
			return nil // this incarnation is ending, or a later snapshot to that follower is on its way
		}
		status := raft.SnapshotFinish
		if err != nil {
			status = raft.SnapshotFailure
			p.log.Warn().Err(err).Str("to", string(name)).Uint64("index", index).Msg("a snapshot did not reach the follower")
		} else {
			p.log.Info().Str("to", string(name)).Uint64("index", index).Msg("a snapshot reached the follower")
		}
		p.rn.ReportSnapshot(to, status)
		p.kick(ctx)
		return nil
	})
}

// onSnapshot steps a snapshot a leader streamed: the head's one MsgSnap
// with the stream's data put back. An error refuses it, and the leader
// reports the snapshot failed.
func (p *Raft) onSnapshot(ctx *actors.Context, from actors.NodeName, head *messages.RaftBatch, data []byte) error {
	if len(head.Messages) != 1 {
		return fmt.Errorf("a snapshot stream whose head holds %d raft messages; want one MsgSnap", len(head.Messages))
	}
	m := &pb.Message{}
	if err := proto.Unmarshal(head.Messages[0], m); err != nil {
		p.drop(from, m, fmt.Errorf("does not decode: %v", err))
		return fmt.Errorf("a snapshot stream whose head does not decode: %v", err)
	}
	if m.GetType() != pb.MessageType_MsgSnap || m.Snapshot == nil || len(m.Snapshot.Data) != 0 {
		err := fmt.Errorf("a snapshot stream whose head is a %v (snapshot data in it: %d bytes); want a MsgSnap without its data", m.GetType(), len(m.GetSnapshot().GetData()))
		p.drop(from, m, err)
		return err
	}
	m.Snapshot.Data = data
	err := p.stepFrom(from, m)
	p.kick(ctx)
	return err
}

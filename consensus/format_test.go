package consensus

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport/sim"
)

// A data dir written before state machines (format 1: entries that are a
// KVCommand, a snapshot that is a KVSnapshot) is refused at start with an
// error that names the format and the way out, never applied as garbage.
func TestFormat1DataDirIsRefused(t *testing.T) {
	old, err := proto.Marshal(&messages.KVCommand{Op: messages.KVOp_KV_OP_PUT, Key: "k", Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	oldSnap, err := proto.Marshal(&messages.KVSnapshot{Pairs: []*messages.KVPair{{Key: "k", Value: []byte("v")}}})
	if err != nil {
		t.Fatal(err)
	}
	node := actors.NodeName("node-1")
	for _, c := range []struct {
		name  string
		write func(d *disk) error
		what  string
	}{
		{"log", func(d *disk) error {
			return d.save(hardState(1, ID(node), 1), []*pb.Entry{entry(1, 1, string(old))}, nil, true)
		}, "raft log entry 1"},
		{"snapshot", func(d *disk) error {
			index, term := uint64(5), uint64(1)
			s := &pb.Snapshot{Data: oldSnap, Metadata: &pb.SnapshotMetadata{Index: &index, Term: &term, ConfState: &pb.ConfState{Voters: []uint64{ID(node)}}}}
			if err := d.save(hardState(1, ID(node), 5), nil, s, true); err != nil {
				return err
			}
			return d.saveSnapshot(s, 0)
		}, "raft snapshot at index 5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.DataDir, cfg.Peers, cfg.NoSync = t.TempDir(), []actors.NodeName{node}, true
			d, _, err := openDisk(filepath.Join(cfg.DataDir, string(node)), true)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.write(d); err != nil {
				t.Fatal(err)
			}
			if err := d.close(); err != nil {
				t.Fatal(err)
			}
			cl := clustertest.NewCluster(t, 1, cluster.Sim(sim.Config{Seed: 1}))
			f, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = cl.Node(node).Start(f)
			if !errors.Is(err, ErrDataFormat) {
				t.Fatalf("starting on a format-1 %s: %v; want ErrDataFormat", c.name, err)
			}
			for _, part := range []string{c.what, "format 1", "KVCommand", "format 2", "empty data dir"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("the error %q does not say %q", err, part)
				}
			}
		})
	}
}

// A snapshot naming a machine this node does not host is refused: its
// state would be lost.
func TestSnapshotOfAnUnhostedMachineIsRefused(t *testing.T) {
	data, err := proto.Marshal(&messages.RaftSnapshot{Format: dataFormat, Machines: []*messages.MachineSnapshot{{Machine: "ledger", Data: []byte{1}}}})
	if err != nil {
		t.Fatal(err)
	}
	p := &Raft{byName: map[string]*hosted{}}
	_, err = p.restoreMachines(7, data)
	if !errors.Is(err, ErrDataFormat) || !strings.Contains(err.Error(), `"ledger"`) {
		t.Fatalf("restore: %v; want ErrDataFormat naming the machine", err)
	}
}

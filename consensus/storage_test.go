package consensus

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

func entry(term, index uint64, data string) *pb.Entry {
	return &pb.Entry{Term: &term, Index: &index, Type: pb.EntryType_EntryNormal.Enum(), Data: []byte(data)}
}

func hardState(term, vote, commit uint64) *pb.HardState {
	return &pb.HardState{Term: &term, Vote: &vote, Commit: &commit}
}

func TestDiskSaveTruncateCompactLoad(t *testing.T) {
	dir := t.TempDir()
	d, st, err := openDisk(dir, true)
	if err != nil || !st.empty() {
		t.Fatalf("a new data dir: %v, empty=%v", err, st != nil && st.empty())
	}
	if err := d.save(hardState(1, 1, 2), []*pb.Entry{entry(1, 1, "a"), entry(1, 2, "b"), entry(1, 3, "c")}, nil, true); err != nil {
		t.Fatal(err)
	}
	// A new leader overwrites entry 3 onwards.
	if err := d.save(hardState(2, 2, 3), []*pb.Entry{entry(2, 3, "C"), entry(2, 4, "D")}, nil, true); err != nil {
		t.Fatal(err)
	}
	snapIndex, snapTerm := uint64(3), uint64(2)
	snap := &pb.Snapshot{Data: []byte("state"), Metadata: &pb.SnapshotMetadata{Index: &snapIndex, Term: &snapTerm, ConfState: &pb.ConfState{Voters: []uint64{1}}}}
	if err := d.saveSnapshot(snap, 2); err != nil {
		t.Fatal(err)
	}
	if err := d.close(); err != nil {
		t.Fatal(err)
	}
	d, st, err = openDisk(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if st.hs.GetCommit() != 3 || st.hs.GetTerm() != 2 || st.snap.GetMetadata().GetIndex() != 3 {
		t.Errorf("hard state %v, snapshot at %d", st.hs, st.snap.GetMetadata().GetIndex())
	}
	if len(st.entries) != 1 || st.entries[0].GetIndex() != 4 || string(st.entries[0].Data) != "D" {
		t.Errorf("entries after the snapshot: %v, want only 4:D", st.entries)
	}
}

func TestDiskRefusesACommitPastTheLog(t *testing.T) {
	dir := t.TempDir()
	d, _, err := openDisk(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.save(hardState(1, 1, 5), []*pb.Entry{entry(1, 1, "a")}, nil, true); err != nil {
		t.Fatal(err)
	}
	_ = d.close()
	if _, _, err := openDisk(dir, true); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("commit 5 with a log ending at 1: %v, want ErrCorrupt", err)
	}
}

// FuzzOpenDisk: whatever bytes raft.db holds, opening it returns a state or
// an error; it never panics or faults.
func FuzzOpenDisk(f *testing.F) {
	dir := f.TempDir()
	d, _, err := openDisk(dir, true)
	if err != nil {
		f.Fatal(err)
	}
	var ents []*pb.Entry
	for i := uint64(1); i <= 20; i++ {
		ents = append(ents, entry(1, i, "some value of an entry"))
	}
	if err := d.save(hardState(1, 1, 20), ents, nil, true); err != nil {
		f.Fatal(err)
	}
	_ = d.close()
	good, err := os.ReadFile(filepath.Join(dir, "raft.db"))
	if err != nil {
		f.Fatal(err)
	}
	// bbolt grows the file in large steps; the pages past the last byte
	// written are zeros, and the fuzzer wants small inputs.
	end := len(good)
	for end > 0 && good[end-1] == 0 {
		end--
	}
	good = good[:(end+4095)/4096*4096]
	if d, _, err := openDisk(writeDB(f, good), true); err != nil {
		f.Fatalf("the trimmed seed does not open: %v", err)
	} else {
		_ = d.close()
	}
	f.Add(good, 0, byte(0))
	f.Add(good, 4096, byte(0xff))
	f.Add(good, 8200, byte(1))
	f.Add(good[:4096], 0, byte(0))
	f.Fuzz(func(t *testing.T, file []byte, at int, x byte) {
		if len(file) > 256<<10 {
			return
		}
		if len(file) > 0 {
			at = (at%len(file) + len(file)) % len(file)
			file[at] ^= x
		}
		d, st, err := openDisk(writeDB(t, file), true)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Logf("not ErrCorrupt: %v", err)
			}
			return
		}
		_ = st
		_ = d.close()
	})
}

func writeDB(t testing.TB, file []byte) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "raft.db"), file, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A Ready that only moves the commit index is written with the next
// transaction (or at close), never before a snapshot past it.
func TestDiskDefersACommitOnlyHardState(t *testing.T) {
	dir := t.TempDir()
	d, _, err := openDisk(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.save(hardState(1, 1, 0), []*pb.Entry{entry(1, 1, "a"), entry(1, 2, "b"), entry(1, 3, "c")}, nil, true); err != nil {
		t.Fatal(err)
	}
	if err := d.save(hardState(1, 1, 2), nil, nil, false); err != nil {
		t.Fatal(err)
	}
	loaded := func() *persisted {
		t.Helper()
		st, err := d.load()
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if c := loaded().hs.GetCommit(); c != 0 {
		t.Fatalf("a commit-only Ready was written at once (commit %d on disk)", c)
	}
	snapIndex, snapTerm := uint64(2), uint64(1)
	snap := &pb.Snapshot{Data: []byte("state"), Metadata: &pb.SnapshotMetadata{Index: &snapIndex, Term: &snapTerm, ConfState: &pb.ConfState{Voters: []uint64{1}}}}
	if err := d.saveSnapshot(snap, 1); err != nil {
		t.Fatal(err)
	}
	if c := loaded().hs.GetCommit(); c != 2 {
		t.Fatalf("after a snapshot at 2 the commit on disk is %d, want 2", c)
	}
	if err := d.save(hardState(1, 1, 3), nil, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := d.close(); err != nil {
		t.Fatal(err)
	}
	d, st, err := openDisk(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if st.hs.GetCommit() != 3 {
		t.Errorf("after close the commit on disk is %d, want 3", st.hs.GetCommit())
	}
}

package consensus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
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

// fuzzSeed writes a small log (20 entries, all committed) and returns the
// bytes of raft.db (trimmed of bbolt's zero pages: the fuzzer wants small
// inputs) and of the log's one segment.
func fuzzSeed(f *testing.F) (db, segment []byte) {
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
	if err := d.close(); err != nil {
		f.Fatal(err)
	}
	if db, err = os.ReadFile(filepath.Join(dir, "raft.db")); err != nil {
		f.Fatal(err)
	}
	end := len(db)
	for end > 0 && db[end-1] == 0 {
		end--
	}
	db = db[:(end+4095)/4096*4096]
	if segment, err = os.ReadFile(filepath.Join(dir, segmentPath)); err != nil {
		f.Fatal(err)
	}
	if d, _, err := openDisk(writeDir(f, db, segment), true); err != nil {
		f.Fatalf("the trimmed seed does not open: %v", err)
	} else {
		_ = d.close()
	}
	return db, segment
}

// segmentPath is the first segment of a log based at 0.
var segmentPath = filepath.Join(logDirName(0), "00000000000000000001")

// writeDir makes a data dir of raft.db and one log segment.
func writeDir(t testing.TB, db, segment []byte) string {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, logDirName(0)), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(os.WriteFile(filepath.Join(dir, "raft.db"), db, 0o600),
		os.WriteFile(filepath.Join(dir, segmentPath), segment, 0o600)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// flip xors the byte at (a position derived from) at with x.
func flip(b []byte, at int, x byte) {
	if len(b) > 0 {
		at = (at%len(b) + len(b)) % len(b)
		b[at] ^= x
	}
}

// FuzzOpenDisk: whatever bytes raft.db holds, opening the data dir
// returns a state or an error; it never panics or faults.
func FuzzOpenDisk(f *testing.F) {
	good, segment := fuzzSeed(f)
	f.Add(good, 0, byte(0))
	f.Add(good, 4096, byte(0xff))
	f.Add(good, 8200, byte(1))
	f.Add(good[:4096], 0, byte(0))
	f.Fuzz(func(t *testing.T, db []byte, at int, x byte) {
		if len(db) > 256<<10 {
			return
		}
		flip(db, at, x)
		d, _, err := openDisk(writeDir(t, db, segment), true)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Logf("not ErrCorrupt: %v", err)
			}
			return
		}
		_ = d.close()
	})
}

// FuzzOpenLog: whatever bytes the log segment holds, opening the data dir
// returns an error, or the same entries as before when they are intact
// (a cut exactly at an entry's end is a shorter, valid log); it never
// panics.
func FuzzOpenLog(f *testing.F) {
	db, good := fuzzSeed(f)
	f.Add(good, 0, byte(0))
	f.Add(good, 1, byte(0x80))
	f.Add(good, 40, byte(1))
	f.Add(good[:len(good)-1], 0, byte(0))
	f.Fuzz(func(t *testing.T, segment []byte, at int, x byte) {
		if len(segment) > 256<<10 {
			return
		}
		flip(segment, at, x)
		d, st, err := openDisk(writeDir(t, db, segment), true)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("not ErrCorrupt: %v", err)
			}
			return
		}
		defer d.close()
		for i, e := range st.entries {
			if e.GetIndex() != uint64(i+1) || string(e.Data) != "some value of an entry" {
				t.Fatalf("entry %d opened as %v", i+1, e)
			}
		}
	})
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

// A data dir of an earlier version kept its log in raft.db: opening it
// moves the log into a write-ahead log, and the next open finds it there.
func TestDiskMigratesALogKeptInBolt(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "raft.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		lb, err := tx.CreateBucket(bucketLog)
		if err != nil {
			return err
		}
		snapIndex, snapTerm := uint64(2), uint64(1)
		snap := &pb.Snapshot{Data: []byte("state"), Metadata: &pb.SnapshotMetadata{Index: &snapIndex, Term: &snapTerm, ConfState: &pb.ConfState{Voters: []uint64{1}}}}
		if err := errors.Join(putProto(meta, keyHardState, hardState(1, 1, 4)), putProto(meta, keySnapshot, snap)); err != nil {
			return err
		}
		for i := uint64(2); i <= 5; i++ { // entry 2 is kept behind the snapshot
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], i)
			if err := putProto(lb, k[:], entry(1, i, fmt.Sprint("v", i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || db.Close() != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		d, st, err := openDisk(dir, true)
		if err != nil {
			t.Fatalf("open %d: %v", round, err)
		}
		var got []string
		for _, e := range st.entries {
			got = append(got, fmt.Sprint(e.GetIndex(), ":", string(e.Data)))
		}
		want := []string{"3:v3", "4:v4", "5:v5"}
		if round == 1 {
			want = append(want, "6:more") // appended after the migration
		}
		if !slices.Equal(got, want) || st.hs.GetCommit() != 4 {
			t.Fatalf("open %d: entries %v, commit %d", round, got, st.hs.GetCommit())
		}
		if err := d.db.View(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketLog) != nil {
				return errors.New("the log is still in raft.db")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			if err := d.save(hardState(1, 1, 4), []*pb.Entry{entry(1, 6, "more")}, nil, true); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A write torn by a crash before its fsync is cut off the end of the log
// at open; damage that may hide an acknowledged entry is refused.
func TestDiskRepairsATornTailOnly(t *testing.T) {
	dir := t.TempDir()
	d, _, err := openDisk(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.save(hardState(1, 1, 2), []*pb.Entry{entry(1, 1, "a"), entry(1, 2, "b"), entry(1, 3, "c")}, nil, true); err != nil {
		t.Fatal(err)
	}
	if err := d.close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, segmentPath))
	if err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(filepath.Join(dir, "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	// the segment holds three records: a uvarint length, then the bytes
	var starts []int
	for at := 0; at < len(good); {
		size, n := binary.Uvarint(good[at:])
		starts = append(starts, at)
		at += n + int(size)
	}
	if len(starts) != 3 {
		t.Fatalf("%d records in the segment, want 3", len(starts))
	}
	third := good[starts[2]:]
	badCRC := slices.Clone(third)
	badCRC[len(badCRC)-1] ^= 1
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	for _, c := range []struct {
		name    string
		segment []byte
		entries int // after the repair; 0: refused
	}{
		{"a fourth record cut short", cat(good, third[:len(third)-2]), 3},
		{"a fourth record's length only", cat(good, third[:1]), 3},
		{"a zero-filled tail", cat(good, make([]byte, 100)), 3},
		{"a fourth record failing its checksum, then zeros", cat(good, badCRC, make([]byte, 50)), 3},
		{"the third record cut short", good[:len(good)-2], 2},
		{"the last record failing its checksum", cat(good[:starts[2]], badCRC), 0},
		{"a damaged length in the middle", cat(good[:starts[1]], []byte{0x7f}, good[starts[1]+1:]), 0},
		{"zeros, then data", cat(good, make([]byte, 10), third), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, st, err := openDisk(writeDir(t, db, c.segment), true)
			if c.entries == 0 {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("opened (%v); want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.close()
			if len(st.entries) != c.entries || d.repaired == 0 {
				t.Fatalf("%d entries after repairing %d bytes; want %d", len(st.entries), d.repaired, c.entries)
			}
		})
	}
}

// stoppedNode makes the data dir of a stopped node that voted and wrote:
// entries 1–3 in the log, term 2 and a vote in raft.db. The commit index
// on disk is 0 (it is written lazily: a crash can leave it behind).
func stoppedNode(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	d, _, err := openDisk(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.save(hardState(2, 1, 0), []*pb.Entry{entry(1, 1, "a"), entry(1, 2, "b"), entry(2, 3, "c")}, nil, true); err != nil {
		t.Fatal(err)
	}
	if err := d.close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// refusedAsMissing opens dir and wants ErrMissingState naming what and
// the way out.
func refusedAsMissing(t *testing.T, dir, what string) {
	t.Helper()
	d, st, err := openDisk(dir, true)
	if err == nil {
		_ = d.close()
		t.Fatalf("opened with term %d, vote %d, %d entries; want ErrMissingState naming %s", st.hs.GetTerm(), st.hs.GetVote(), len(st.entries), what)
	}
	if !errors.Is(err, ErrMissingState) {
		t.Fatalf("error %q; want ErrMissingState", err)
	}
	for _, want := range []string{what, "ForceNewState", "--force-new-state", "docs/operations.md"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	t.Logf("refused: %v", err)
}

// A stopped node whose raft.db is deleted or emptied would start with
// term 0 and no vote, free to vote twice in a term: it is refused.
func TestDiskRefusesALostRaftDB(t *testing.T) {
	t.Run("deleted", func(t *testing.T) {
		dir := stoppedNode(t)
		if err := os.Remove(filepath.Join(dir, "raft.db")); err != nil {
			t.Fatal(err)
		}
		refusedAsMissing(t, dir, "raft.db")
	})
	t.Run("truncated to 0 bytes", func(t *testing.T) {
		dir := stoppedNode(t)
		if err := os.Truncate(filepath.Join(dir, "raft.db"), 0); err != nil {
			t.Fatal(err)
		}
		refusedAsMissing(t, dir, "raft.db")
	})
	t.Run("deleted with its marker", func(t *testing.T) {
		dir := stoppedNode(t)
		if err := errors.Join(os.Remove(filepath.Join(dir, "raft.db")), os.Remove(filepath.Join(dir, "raft.db.created"))); err != nil {
			t.Fatal(err)
		}
		refusedAsMissing(t, dir, "raft.db is missing, but the files it goes with are there ("+filepath.Join(dir, logDirName(0)))
	})
	t.Run("replaced by an empty bbolt file", func(t *testing.T) {
		dir := stoppedNode(t)
		path := filepath.Join(dir, "raft.db")
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil || db.Close() != nil {
			t.Fatal(err)
		}
		refusedAsMissing(t, dir, "raft.db")
	})
}

// raft.db records a vote and entries; its log deleted or emptied is
// refused, whatever the log's base.
func TestDiskRefusesALostLog(t *testing.T) {
	t.Run("log directory deleted", func(t *testing.T) {
		dir := stoppedNode(t)
		if err := os.RemoveAll(filepath.Join(dir, logDirName(0))); err != nil {
			t.Fatal(err)
		}
		refusedAsMissing(t, dir, logDirName(0))
	})
	t.Run("log segments deleted", func(t *testing.T) {
		dir := stoppedNode(t)
		if err := os.Remove(filepath.Join(dir, segmentPath)); err != nil {
			t.Fatal(err)
		}
		refusedAsMissing(t, dir, logDirName(0))
	})
}

// A data dir with nothing in it starts empty, and so does one a crash
// interrupted while it was being made (no raft.db yet, an empty log).
func TestDiskStartsFromAFreshDir(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(dir string) error
	}{
		{"no dir at all", func(dir string) error { return os.Remove(dir) }},
		{"an empty dir", func(string) error { return nil }},
		{"other protocols' files", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "commit.db"), []byte("not ours"), 0o600)
		}},
		{"an empty log, no raft.db", func(dir string) error {
			return errors.Join(os.MkdirAll(filepath.Join(dir, logDirName(0)), 0o750),
				os.WriteFile(filepath.Join(dir, segmentPath), nil, 0o600))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "node-1")
			if err := errors.Join(os.MkdirAll(dir, 0o750), c.setup(dir)); err != nil {
				t.Fatal(err)
			}
			for round := range 2 {
				d, st, err := openDisk(dir, true)
				if err != nil {
					t.Fatalf("open %d: %v", round, err)
				}
				if !st.empty() {
					t.Fatalf("open %d: state %v", round, st)
				}
				if err := d.close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// ForceNewState moves a refused state aside, so that the node starts
// empty; it leaves a complete state alone; both are logged.
func TestForceNewStateSetsAsideARefusedStateOnly(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Join, cfg.ForceNewState, cfg.NoSync = t.TempDir(), true, true, true
	dir := filepath.Join(cfg.DataDir, "node-1")
	if err := os.CopyFS(dir, os.DirFS(stoppedNode(t))); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := zerolog.New(&logs)

	if err := PrepareDataDir(cfg, "node-1", log); err != nil {
		t.Fatal(err)
	}
	d, st, err := openDisk(dir, true)
	if err != nil || len(st.entries) != 3 || st.hs.GetVote() != 1 {
		t.Fatalf("a complete state after ForceNewState: %v, %v", err, st)
	}
	_ = d.close()
	if !strings.Contains(logs.String(), "the flag does nothing") {
		t.Errorf("no warning that the flag did nothing: %s", logs.String())
	}

	if err := os.Remove(filepath.Join(dir, "raft.db")); err != nil {
		t.Fatal(err)
	}
	if err := PrepareDataDir(cfg, "node-1", log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "FORCE NEW STATE") || !strings.Contains(logs.String(), "raft.db is missing") {
		t.Errorf("no loud warning naming what was refused: %s", logs.String())
	}
	d, st, err = openDisk(dir, true)
	if err != nil || !st.empty() {
		t.Fatalf("after ForceNewState: %v, empty=%v", err, st != nil && st.empty())
	}
	_ = d.close()
	aside := filepath.Join(dir, "raft-set-aside-1")
	for _, n := range []string{"raft.db.created", segmentPath} {
		if _, err := os.Stat(filepath.Join(aside, n)); err != nil {
			t.Errorf("not set aside: %v", err)
		}
	}

	cfg.Join = false
	if err := PrepareDataDir(cfg, "node-1", log); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("ForceNewState without Join: %v, want ErrInvalidConfig", err)
	}
	cfg.ForceNewState = false
	if err := os.Truncate(filepath.Join(dir, "raft.db"), 0); err != nil {
		t.Fatal(err)
	}
	if err := PrepareDataDir(cfg, "node-1", log); err != nil {
		t.Errorf("without ForceNewState PrepareDataDir does nothing; got %v", err)
	}
	if _, _, err := openDisk(dir, true); !errors.Is(err, ErrMissingState) {
		t.Errorf("the truncated raft.db after PrepareDataDir without ForceNewState: %v, want ErrMissingState", err)
	}
}

package consensus

import (
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// appendMsg is a MsgStorageAppend of entries and (when hs is set) a hard
// state, with one response to deliver once it is written.
func appendMsg(hs *pb.HardState, ents ...*pb.Entry) *diskJob {
	m := &pb.Message{Type: pb.MessageType_MsgStorageAppend.Enum(), Entries: ents,
		Responses: []*pb.Message{{Type: pb.MessageType_MsgAppResp.Enum()}}}
	if hs != nil {
		m.Term, m.Vote, m.Commit = hs.Term, hs.Vote, hs.Commit
	}
	return appendJob(m, len(ents) > 0)
}

// testWriter starts a writer of a fresh data dir whose reports arrive on
// the returned channel.
func testWriter(t *testing.T, inline bool) (*writer, string, chan *written) {
	t.Helper()
	dir := t.TempDir()
	d, _, err := openDisk(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan *written, 16)
	w := startWriter(d, func(wr *written) { reports <- wr }, nil, inline)
	return w, dir, reports
}

func nextReport(t *testing.T, reports chan *written) *written {
	t.Helper()
	select {
	case wr := <-reports:
		return wr
	case <-time.After(10 * time.Second):
		t.Fatal("the writer reported nothing in 10 s")
		return nil
	}
}

// reopen closes w's disk once w has stopped and loads what is on it.
func reopen(t *testing.T, w *writer, dir string) *persisted {
	t.Helper()
	w.stop()
	if err := w.d.close(); err != nil {
		t.Fatal(err)
	}
	d, st, err := openDisk(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.close(); err != nil {
		t.Fatal(err)
	}
	return st
}

// The writes queued while the writer is busy go as one batch, reported in
// order with the responses raft attached; a later write that overwrites a
// suffix (a new leader's entries) wins on disk, with its hard state.
func TestWriterBatchesInOrder(t *testing.T) {
	w, dir, reports := testWriter(t, false)
	jobs := []*diskJob{
		appendMsg(hardState(1, 1, 0), entry(1, 1, "a"), entry(1, 2, "b")),
		appendMsg(nil, entry(1, 3, "c")),
		appendMsg(hardState(2, 2, 2), entry(2, 3, "C")),
	}
	// Queued together, as while a batch is being written.
	w.mu.Lock()
	w.queue = append(w.queue, jobs...)
	w.mu.Unlock()
	w.wake <- struct{}{}
	wr := nextReport(t, reports)
	if wr.err != nil || wr.w != w || len(wr.jobs) != 3 {
		t.Fatalf("report: err %v, %d jobs; want one batch of the 3 queued", wr.err, len(wr.jobs))
	}
	for i, j := range wr.jobs {
		if j != jobs[i] || len(j.msg.Responses) != 1 {
			t.Fatalf("job %d of the batch is not the %d-th queued, with its response", i, i)
		}
	}
	w.push(appendMsg(nil, entry(2, 4, "D")))
	if wr := nextReport(t, reports); wr.err != nil || len(wr.jobs) != 1 {
		t.Fatalf("a write pushed alone: err %v, %d jobs", wr.err, len(wr.jobs))
	}
	st := reopen(t, w, dir)
	var got []string
	for _, e := range st.entries {
		got = append(got, string(e.Data))
	}
	if strings.Join(got, ",") != "a,b,C,D" || st.hs.GetTerm() != 2 || st.hs.GetVote() != 2 {
		t.Fatalf("on disk: entries %v, term %d vote %d; want a,b,C,D, term 2 vote 2", got, st.hs.GetTerm(), st.hs.GetVote())
	}
}

// Stop makes the writes still queued without reporting them, so that the
// hard state they carry (its commit index) is recorded at close.
func TestWriterStopWritesTheQueue(t *testing.T) {
	w, dir, reports := testWriter(t, false)
	w.push(appendMsg(hardState(1, 1, 0), entry(1, 1, "a")))
	nextReport(t, reports)
	// Queued as stop begins (set here under the same lock, so that the
	// goroutine cannot take the write before).
	w.mu.Lock()
	w.queue = append(w.queue, appendMsg(hardState(1, 1, 1), entry(1, 2, "b")))
	w.stopping = true
	w.mu.Unlock()
	st := reopen(t, w, dir) // stops the writer first
	if len(st.entries) != 2 || st.hs.GetCommit() != 1 {
		t.Fatalf("after stop: %d entries, commit %d; want 2 entries, commit 1", len(st.entries), st.hs.GetCommit())
	}
	select {
	case wr := <-reports:
		t.Fatalf("a write made at stop was reported (%d jobs)", len(wr.jobs))
	default:
	}
}

// A write that fails is reported with its error, and the writer writes
// nothing more: the protocol restarts from what is on disk.
func TestWriterHaltsOnAFailedWrite(t *testing.T) {
	for _, inline := range []bool{false, true} {
		w, dir, reports := testWriter(t, inline)
		w.push(appendMsg(hardState(1, 1, 0), entry(1, 1, "a")))
		if wr := nextReport(t, reports); wr.err != nil {
			t.Fatal(wr.err)
		}
		w.push(appendMsg(nil, entry(1, 5, "a gap"))) // the log ends at 1
		wr := nextReport(t, reports)
		if wr.err == nil || !strings.Contains(wr.err.Error(), "appending entry 5 to a log that ends at 1") {
			t.Fatalf("inline %v: a write past the log's end: %v", inline, wr.err)
		}
		w.push(appendMsg(nil, entry(1, 2, "b")))
		if st := reopen(t, w, dir); len(st.entries) != 1 {
			t.Fatalf("inline %v: %d entries on disk; want the 1 written before the failure", inline, len(st.entries))
		}
		select {
		case wr := <-reports:
			t.Fatalf("inline %v: the writer wrote after a failure (%d jobs, %v)", inline, len(wr.jobs), wr.err)
		default:
		}
	}
}

// A snapshot the node made, queued behind one received from the leader
// that is newer, is not written over it.
func TestWriterKeepsTheNewerSnapshot(t *testing.T) {
	w, dir, reports := testWriter(t, false)
	w.push(appendMsg(hardState(1, 1, 3), entry(1, 1, "a"), entry(1, 2, "b"), entry(1, 3, "c")))
	nextReport(t, reports)
	idx, term := uint64(10), uint64(2)
	recv := &pb.Snapshot{Data: []byte("from the leader"), Metadata: &pb.SnapshotMetadata{Index: &idx, Term: &term, ConfState: &pb.ConfState{Voters: []uint64{1}}}}
	m := &pb.Message{Type: pb.MessageType_MsgStorageAppend.Enum(), Snapshot: recv}
	m.Term, m.Vote, m.Commit = new(uint64(2)), new(uint64(0)), new(uint64(10))
	old, oldTerm := uint64(3), uint64(1)
	made := &pb.Snapshot{Data: []byte("made here"), Metadata: &pb.SnapshotMetadata{Index: &old, Term: &oldTerm, ConfState: &pb.ConfState{Voters: []uint64{1}}}}
	w.mu.Lock()
	w.queue = append(w.queue, appendJob(m, true), &diskJob{made: made, compactTo: 2})
	w.mu.Unlock()
	w.wake <- struct{}{}
	if wr := nextReport(t, reports); wr.err != nil || len(wr.jobs) != 2 {
		t.Fatalf("report: %v, %d jobs", wr.err, len(wr.jobs))
	}
	st := reopen(t, w, dir)
	if string(st.snap.GetData()) != "from the leader" || len(st.entries) != 0 {
		t.Fatalf("on disk: snapshot %q, %d entries; want the leader's, none", st.snap.GetData(), len(st.entries))
	}
}

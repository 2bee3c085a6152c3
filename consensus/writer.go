package consensus

import (
	"sync"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// writer makes the disk writes of one incarnation, in order, off the
// protocol's mailbox (etcd raft's AsyncStorageWrites), and posts each
// batch of finished writes back ([written]). While it writes and fsyncs,
// the protocol keeps stepping proposals, appends and acknowledgements: a
// leader replicates the next entries while its own write of the last ones
// is under way, and a follower answers an append as soon as its own fsync
// returns.
//
// It takes every write queued since its last pass as one batch: the
// entries of each in order, then one fsync for them all (group commit),
// then the hard state when its term or vote changed. Nothing is answered
// before that: the acknowledgements raft attached to a write
// (MsgStorageAppend.Responses: a follower's append and vote responses, the
// leader's own) are sent or stepped by the protocol once the batch holding
// it is on disk.
//
// With Config.Inline it writes on the protocol's mailbox, in push, and
// still posts the result as a later event: for the deterministic
// simulation, where nothing may run off the scheduler's goroutine.
type writer struct {
	d      *disk
	report func(*written) // posts to the protocol (Ref.Post)
	hook   func()         // before each batch (Config.writeHook), or nil
	inline bool
	wake   chan struct{}
	done   chan struct{}

	mu       sync.Mutex
	queue    []*diskJob
	halted   bool // a write failed: nothing more is written
	stopping bool // the incarnation ends: the queue is written, not reported
}

// diskJob is one write: a Ready's MsgStorageAppend (entries, hard state, a
// snapshot from the leader), or a snapshot this node made (made, with the
// index to compact the log to).
type diskJob struct {
	msg       *pb.Message // MsgStorageAppend
	hs        *pb.HardState
	sync      bool
	made      *pb.Snapshot
	compactTo uint64
}

// written reports a batch of finished writes, in order, to the protocol;
// err when one failed (the later ones were not made).
type written struct {
	w    *writer // the incarnation's writer: a report of an earlier one is dropped
	jobs []*diskJob
	err  error
}

// startWriter starts the writer of d; report hands each batch's result to
// the protocol (from the writer's goroutine, or inline from push); hook,
// if not nil, runs before each batch.
func startWriter(d *disk, report func(*written), hook func(), inline bool) *writer {
	w := &writer{d: d, report: report, hook: hook, inline: inline, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if inline {
		close(w.done)
	} else {
		go w.run()
	}
	return w
}

// appendJob is the write of a Ready's MsgStorageAppend.
func appendJob(m *pb.Message, mustSync bool) *diskJob {
	j := &diskJob{msg: m, sync: mustSync || len(m.Entries) > 0}
	if m.Term != nil || m.Vote != nil || m.Commit != nil {
		j.hs = &pb.HardState{Term: new(m.GetTerm()), Vote: new(m.GetVote()), Commit: new(m.GetCommit())}
	}
	return j
}

// push queues a write (inline: makes it, and posts the result); it never
// blocks.
func (w *writer) push(j *diskJob) {
	if w.inline {
		if !w.halted {
			jobs := []*diskJob{j}
			err := w.write(jobs)
			if err != nil {
				w.halted = true
			}
			w.report(&written{w: w, jobs: jobs, err: err})
		}
		return
	}
	w.mu.Lock()
	if !w.halted {
		w.queue = append(w.queue, j)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// stop makes the writes queued, without reporting them, and waits for
// the goroutine to end. Then the disk is the caller's: closing it records
// the latest hard state (its commit index) the writes carried, as a
// synchronous write at every Ready did.
func (w *writer) stop() {
	w.mu.Lock()
	w.stopping = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.done
}

func (w *writer) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		if w.halted || w.stopping && len(w.queue) == 0 {
			w.mu.Unlock()
			return
		}
		if len(w.queue) == 0 {
			w.mu.Unlock()
			<-w.wake
			continue
		}
		jobs := w.queue
		w.queue = nil
		w.mu.Unlock()
		err := w.write(jobs)
		w.mu.Lock()
		stopping := w.stopping
		if err != nil {
			w.halted, w.queue = true, nil
		}
		w.mu.Unlock()
		if !stopping {
			w.report(&written{w: w, jobs: jobs, err: err})
		}
	}
}

// write makes a batch of writes: each job's in order, one fsync of the log
// for all of them at the end. The log is synced before any write to
// raft.db, which records the hard state: its commit index must never
// point past the log on disk.
func (w *writer) write(jobs []*diskJob) error {
	if w.hook != nil {
		w.hook()
	}
	d, needSync := w.d, false
	for _, j := range jobs {
		snap := j.made
		if j.msg != nil {
			snap = j.msg.Snapshot
		}
		if !raft.IsEmptySnap(snap) && needSync {
			if err := d.flush(true); err != nil {
				return err
			}
			needSync = false
		}
		if j.made != nil {
			if j.made.GetMetadata().GetIndex() < d.base {
				continue // a snapshot from the leader, written since, is newer
			}
			if err := d.saveSnapshot(j.made, j.compactTo); err != nil {
				return err
			}
			continue
		}
		if err := d.write(j.hs, j.msg.Entries, j.msg.Snapshot); err != nil {
			return err
		}
		needSync = needSync || j.sync
	}
	return d.flush(needSync)
}

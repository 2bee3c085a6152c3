package commit

import (
	"fmt"
	"sync"

	"github.com/troupe-dev/troupe/actors"
)

// Resource is a participant's share of the transactions: what a node
// commits or aborts (a ledger, a table, a file). The commit protocol
// opens one per node through Config.Resource.
//
// Threading: the protocol calls the methods one at a time, in the order it
// issues them, from one goroutine it owns (never its mailbox), so they need
// no lock among themselves; code that reads the resource from elsewhere
// must synchronise with them. They may block on the disk, but must not wait
// for another transaction: the calls are serialised, so a Prepare that
// waited for another transaction's Commit would wait forever. Refuse
// instead (vote no). Prepared is called once, at start, before the others;
// Close once, when the protocol stops.
type Resource interface {
	// Prepare votes on tx's op. Nil is yes, and a promise that Commit(tx)
	// will succeed even after a crash: what Commit needs must be durable
	// before Prepare returns. An error is no; it must leave nothing
	// prepared, and its text becomes the abort reason. Preparing a tx that
	// is already prepared returns nil.
	Prepare(tx string, op []byte) error
	// Commit makes tx's prepared changes durable and visible. For a tx
	// that is not prepared (never was, or already committed or aborted)
	// it does nothing and returns nil. An error is retried.
	Commit(tx string) error
	// Abort discards tx's prepared changes, with Commit's idempotence.
	Abort(tx string) error
	// Prepared lists the transactions prepared and neither committed nor
	// aborted. At start the protocol aborts those it never voted yes for
	// (it crashed between Prepare and logging its vote).
	Prepared() ([]string, error)
	// Close releases the resource.
	Close() error
}

type jobKind uint8

const (
	jobPrepare jobKind = iota + 1
	jobCommit
	jobAbort
)

func (k jobKind) String() string {
	switch k {
	case jobPrepare:
		return "prepare"
	case jobCommit:
		return "commit"
	case jobAbort:
		return "abort"
	}
	return "unknown"
}

type job struct {
	kind jobKind
	tx   string
	op   []byte
}

// resourceDone reports a finished Resource call to the protocol.
type resourceDone struct {
	w    *worker // the incarnation's worker: results of an earlier one are dropped
	kind jobKind
	tx   string
	err  error
}

// worker makes the Resource calls of one incarnation, in order, off the
// protocol's mailbox, and Tells each result back.
type worker struct {
	res    Resource
	ref    actors.Ref
	inline bool // calls run in push, on the caller's goroutine (Config.Inline)
	wake   chan struct{}
	done   chan struct{}

	mu     sync.Mutex
	queue  []job
	halted bool
}

func startWorker(res Resource, ref actors.Ref, inline bool) *worker {
	w := &worker{res: res, ref: ref, inline: inline, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if inline {
		close(w.done)
	} else {
		go w.run()
	}
	return w
}

// push queues a call (inline: makes it); it never blocks.
func (w *worker) push(j job) {
	if w.inline {
		if !w.halted {
			_ = w.ref.Post(&resourceDone{w: w, kind: j.kind, tx: j.tx, err: w.call(j)})
		}
		return
	}
	w.mu.Lock()
	if !w.halted {
		w.queue = append(w.queue, j)
	}
	w.mu.Unlock()
	w.signal()
}

func (w *worker) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// halt drops the queued calls and reports no more results; a call under
// way finishes. It does not wait.
func (w *worker) halt() {
	w.mu.Lock()
	w.halted, w.queue = true, nil
	w.mu.Unlock()
	w.signal()
}

// stop halts the worker and waits for its goroutine to exit.
func (w *worker) stop() {
	w.halt()
	<-w.done
}

func (w *worker) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		if w.halted {
			w.mu.Unlock()
			return
		}
		if len(w.queue) == 0 {
			w.mu.Unlock()
			<-w.wake
			continue
		}
		j := w.queue[0]
		w.queue[0] = job{}
		w.queue = w.queue[1:]
		w.mu.Unlock()
		err := w.call(j)
		w.mu.Lock()
		halted := w.halted
		w.mu.Unlock()
		if !halted {
			_ = w.ref.Post(&resourceDone{w: w, kind: j.kind, tx: j.tx, err: err})
		}
	}
}

// call runs one Resource method; a panic is its error.
func (w *worker) call(j job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("resource %s of %s panicked: %v", j.kind, j.tx, r)
		}
	}()
	switch j.kind {
	case jobPrepare:
		return w.res.Prepare(j.tx, j.op)
	case jobCommit:
		return w.res.Commit(j.tx)
	default:
		return w.res.Abort(j.tx)
	}
}

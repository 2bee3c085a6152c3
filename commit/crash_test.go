package commit_test

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/commit"
	"github.com/troupe-dev/troupe/examples/bank"
	"github.com/troupe-dev/troupe/transport/sim"
)

var flagSweep = flag.Bool("commit.sweep", false,
	"run the whole crash sweep: also with the coordinator as a participant, and on a lossy, duplicating, reordering network")

// layout places a transfer's coordinator and participants.
type layout struct {
	name     string
	coord    actors.NodeName
	from, to bank.Account
	victims  []actors.NodeName
}

var (
	// The coordinator takes no part: crash it, and each participant.
	external = layout{"external", "node-1", acct("node-2", "a"), acct("node-3", "a"), []actors.NodeName{"node-1", "node-2", "node-3"}}
	// The coordinator is the debit side.
	colocated = layout{"colocated", "node-1", acct("node-1", "a"), acct("node-2", "a"), []actors.NodeName{"node-1", "node-2"}}
)

type want uint8

const (
	wantCommit want = iota + 1
	wantAbort
	wantEither // the timing of the restart against the vote timeout decides
)

func (w want) String() string { return [...]string{"", "commit", "abort", "either"}[w] }

type crashCase struct {
	step   commit.Step
	victim actors.NodeName
	want   want
}

// cases lists the crash points of a layout: every coordinator step on the
// coordinator, every participant step on each participant, with the
// outcome each must have.
func (l layout) cases(mode commit.Mode, faulty bool) []crashCase {
	coordWant := map[commit.Step]want{}
	decided := false
	for _, s := range commit.CoordinatorSteps {
		decided = decided || s == "coordinator.decided"
		coordWant[s] = wantAbort
		if decided {
			coordWant[s] = wantCommit
		}
	}
	var out []crashCase
	for _, v := range l.victims {
		if v == l.coord {
			for _, s := range commit.CoordinatorSteps {
				if s == commit.StepPending && mode != commit.Consensus {
					continue
				}
				out = append(out, crashCase{s, v, coordWant[s]})
			}
		}
		if !slices.Contains([]actors.NodeName{l.from.Node, l.to.Node}, v) {
			continue
		}
		for _, s := range commit.ParticipantSteps {
			w := wantCommit
			switch {
			case s == "participant.decision-received" || s == "participant.applied" || s == "participant.ack-sent":
				// decided before the crash
			case v == l.coord:
				w = wantAbort // the coordinator dies undecided
			case s != "participant.voted" || faulty:
				w = wantEither // the restarted participant votes again if it is quick enough
			}
			out = append(out, crashCase{s, v, w})
		}
	}
	return out
}

// TestCrashAtEveryStep crashes the coordinator and each participant at
// every step of a transfer, restarts the node from its data dir, and
// checks that the transfer ends committed at every participant or at
// none, as the step dictates, that nothing stays in doubt, and that the
// bank's total does not change. In Consensus mode the participants must
// resolve while a crashed coordinator is still down.
func TestCrashAtEveryStep(t *testing.T) {
	type run struct {
		mode   commit.Mode
		layout layout
		faulty bool
	}
	runs := []run{{commit.Textbook, external, false}, {commit.Consensus, external, false}}
	if *flagSweep {
		runs = append(runs, run{commit.Textbook, colocated, false}, run{commit.Consensus, colocated, false},
			run{commit.Textbook, external, true}, run{commit.Consensus, external, true},
			run{commit.Textbook, colocated, true}, run{commit.Consensus, colocated, true})
	}
	for i, r := range runs {
		name := fmt.Sprintf("%s/%s", r.mode, r.layout.name)
		if r.faulty {
			name += "/faulty"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var opts []envOption
			if r.faulty {
				opts = append(opts, withFaults(sim.Faults{Loss: 0.05, Duplicate: 0.05, Reorder: 0.1}))
			}
			e := newEnv(t, 3, r.mode, uint64(10+i), opts...)
			for _, c := range r.layout.cases(r.mode, r.faulty) {
				e.crashCase(t, r.layout, c)
			}
		})
	}
}

func (e *env) crashCase(t *testing.T, l layout, c crashCase) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		if e.crashAttempt(t, l, c) {
			return
		}
		// The transaction aborted before it reached the step (on a
		// faulty network, a lost vote or a consensus group between
		// leaders): it was checked; try another.
		if attempt == 5 {
			t.Fatalf("%s crashed at %s: the step was never reached in %d transactions", c.victim, c.step, attempt)
		}
	}
}

// crashAttempt runs one transfer and crashes the victim at the step. It
// reports false if the transfer aborted without reaching the step.
func (e *env) crashAttempt(t *testing.T, l layout, c crashCase) bool {
	t.Helper()
	what := fmt.Sprintf("%s crashed at %s", c.victim, c.step)
	start := time.Now()
	var mu sync.Mutex
	armed := true
	fired := make(chan string, 1)
	crashed := make(chan error, 1)
	e.setHook(func(s commit.Step, node actors.NodeName, tx string) bool {
		if s != c.step || node != c.victim {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if !armed {
			return false
		}
		armed = false
		fired <- tx
		go func() { crashed <- e.c.Crash(node) }()
		return true
	})
	defer e.setHook(nil)

	tx := e.transfer(l.from, l.to, 10)
	parts := participantsOf(tx)
	type result struct {
		o   commit.Outcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		o, err := e.do(l.coord, tx)
		done <- result{o, err}
	}()
	var id string
	var r *result
	select {
	case id = <-fired:
	case res := <-done:
		if res.err == nil && res.o.Committed {
			// A commit reaches every step; the participants' last ones
			// come after the client learns the outcome.
			r = &res
			select {
			case id = <-fired:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: committed, yet the step was never reached", what)
			}
			break
		}
		mu.Lock()
		reached := !armed
		armed = false
		mu.Unlock()
		if reached {
			id = <-fired
			r = &res
			break
		}
		if res.err != nil {
			t.Fatalf("%s: the step was not reached and the client got %v", what, res.err)
		}
		e.waitQuiet(10 * time.Second)
		if o := e.ledgers(res.o.ID, parts); len(o.committed) != 0 {
			t.Fatalf("%s: %s aborted, yet %v", what, res.o.ID, o)
		}
		t.Logf("%-32s on %s: not reached, %s aborted: %s", c.step, c.victim, res.o.ID, res.o.Reason)
		return false
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the step was never reached", what)
	}
	if err := <-crashed; err != nil {
		t.Fatalf("%s: crashing: %v", what, err)
	}
	if e.mode == commit.Consensus && c.victim == l.coord {
		// Non-blocking: the live participants resolve without the
		// coordinator.
		var last error
		err := waitFor(10*time.Second, func() bool { last = e.quiet(); return last == nil })
		if err != nil {
			t.Fatalf("%s: the live participants did not resolve while the coordinator was down: %v", what, last)
		}
	}
	if _, err := e.c.Restart(c.victim); err != nil {
		t.Fatalf("%s: restarting: %v", what, err)
	}
	var last error
	if err := waitFor(10*time.Second, func() bool { last = e.quiet(); return last == nil }); err != nil {
		t.Fatalf("%s: the cluster did not settle after the restart: %v", what, last)
	}
	o := e.ledgers(id, parts)
	if !o.atomic(parts) {
		t.Fatalf("%s: %s: not atomic: %v", what, id, o)
	}
	committed := len(o.committed) > 0
	if c.want == wantCommit && !committed || c.want == wantAbort && committed {
		t.Fatalf("%s: %s: %v; want %v", what, id, o, c.want)
	}
	if r == nil {
		res := <-done
		r = &res
	}
	switch {
	case r.err == nil:
		if r.o.ID != id || r.o.Committed != committed {
			t.Fatalf("%s: the client was told %+v, the ledgers say %v", what, r.o, o)
		}
	case !errors.Is(r.err, commit.ErrStopped) || c.victim != l.coord:
		t.Fatalf("%s: the client got %v", what, r.err)
	}
	if e.mode == commit.Consensus {
		if err := e.keyGone(id); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	e.checkTotal()
	t.Logf("%-32s on %s: %-9s in %4d ms (%v)", c.step, c.victim, map[bool]string{true: "committed", false: "aborted"}[committed],
		time.Since(start).Milliseconds(), o)
	return true
}

package simulation

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/commit"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/transport/sim"
)

// CommitConfig shapes the commit scenario. The zero value is the default
// of cmd/sim.
type CommitConfig struct {
	Nodes    int           // default 5
	Duration time.Duration // virtual length; default 20s
	// Mode is where coordinators record decisions (commit.Textbook or
	// commit.Consensus, which runs a Raft group too); "" lets each seed
	// draw one.
	Mode commit.Mode
}

// CommitProfiles are the fault profiles of the commit scenario: its modes.
var CommitProfiles = []string{string(commit.Textbook), string(commit.Consensus)}

// Commit is the scenario "commit": two-phase commit (package commit) with
// its logs in data dirs and its Resource calls inline (commit.Config.Inline);
// coordinators on random running nodes submit transactions over two to
// four participants, one in ten of which votes no; the nemesis crashes and
// restarts nodes, partitions the network, makes bursts of loss,
// duplication and reordering and skews clocks (±1s). The participants' resources
// are simulated ledgers whose state survives a crash, as a disk's would.
//
// Checkers: atomicity — no transaction commits at one participant and
// aborts at another, and none commits when its coordinator reported an
// abort, nor aborts when it reported a commit (checked at every commit and
// abort); and no participant is left in doubt (prepared, undecided) at the
// end of the run, after the nemesis.
func Commit(cfg CommitConfig) Scenario {
	cfg.Nodes = cmpOr(cfg.Nodes, 5)
	cfg.Duration = cmpOr(cfg.Duration, 20*time.Second)
	return Scenario{
		Name:        "commit",
		Description: fmt.Sprintf("%d nodes running two-phase commit over simulated ledgers, crashes/partitions/bursts/skew; atomicity, nobody left in doubt", cfg.Nodes),
		Nodes:       cfg.Nodes,
		Duration:    cfg.Duration,
		Network:     sim.Faults{Latency: time.Millisecond, Jitter: 2 * time.Millisecond},
		Setup:       func(w *World) error { return setupCommit(w, cfg) },
	}
}

// ledger is a simulated participant's durable state: it survives the
// node's crashes, as a disk's content would.
type ledger struct {
	prepared  map[string]bool
	committed map[string]bool
	aborted   map[string]bool
}

// ledgerResource is a commit.Resource over a ledger for one incarnation.
type ledgerResource struct {
	node actors.NodeName
	l    *ledger
	c    *commitChecker
}

func (r *ledgerResource) Prepare(tx string, op []byte) error {
	if r.l.prepared[tx] || r.l.committed[tx] || r.l.aborted[tx] {
		return nil
	}
	if string(op) == "no" {
		return errors.New("the op says no")
	}
	r.l.prepared[tx] = true
	return nil
}

func (r *ledgerResource) Commit(tx string) error {
	if r.l.prepared[tx] {
		delete(r.l.prepared, tx)
		r.l.committed[tx] = true
		r.c.applied(tx, r.node, true)
	}
	return nil
}

func (r *ledgerResource) Abort(tx string) error {
	if r.l.prepared[tx] {
		delete(r.l.prepared, tx)
		r.l.aborted[tx] = true
		r.c.applied(tx, r.node, false)
	}
	return nil
}

func (r *ledgerResource) Prepared() ([]string, error) {
	return slices.Sorted(maps.Keys(r.l.prepared)), nil
}

func (r *ledgerResource) Close() error { return nil }

// commitChecker sees every commit and abort at every participant and every
// outcome a coordinator reports.
type commitChecker struct {
	w        *World
	commits  map[string]actors.NodeName // tx → a participant that committed it
	aborts   map[string]actors.NodeName // tx → a participant that aborted it
	outcomes map[string]bool            // tx → Committed, as reported
}

func (c *commitChecker) applied(tx string, node actors.NodeName, committed bool) {
	c.w.Note(fmt.Sprintf("commit %s %s committed=%v", node, tx, committed))
	if committed {
		c.commits[tx] = node
		c.w.Count("commit_applied_commits", 1)
	} else {
		c.aborts[tx] = node
		c.w.Count("commit_applied_aborts", 1)
	}
	c.check(tx)
}

func (c *commitChecker) check(tx string) {
	ca, cok := c.commits[tx]
	ab, aok := c.aborts[tx]
	out, known := c.outcomes[tx]
	switch {
	case cok && aok:
		c.w.Fail(fmt.Errorf("commit: %s committed at %s and aborted at %s", tx, ca, ab))
	case known && out && aok:
		c.w.Fail(fmt.Errorf("commit: %s was reported committed but aborted at %s", tx, ab))
	case known && !out && cok:
		c.w.Fail(fmt.Errorf("commit: %s was reported aborted but committed at %s", tx, ca))
	}
}

func setupCommit(w *World, cfg CommitConfig) error {
	quiet := cfg.Duration - 8*time.Second // the nemesis stops here
	if quiet < 2*time.Second {
		return fmt.Errorf("commit: Duration %v leaves no time for faults and recovery; use 10s or more", cfg.Duration)
	}
	mode := cfg.Mode
	if mode == "" {
		mode = commit.Textbook
		if w.Rand.IntN(2) == 1 {
			mode = commit.Consensus
		}
	}
	if !slices.Contains(CommitProfiles, string(mode)) {
		return fmt.Errorf("unknown mode %q; valid: %v", mode, CommitProfiles)
	}
	w.Count("profile_"+string(mode), 1)
	if mode == commit.Consensus {
		rc := consensus.DefaultConfig()
		rc.DataDir, rc.Peers, rc.NoSync, rc.Inline = w.DataDir, w.Names(), true, true
		rc.Machines = []consensus.Machine{kv.DefaultMachine()}
		rf, err := consensus.New(rc)
		if err != nil {
			return err
		}
		if err := w.Start(rf); err != nil {
			return err
		}
	}
	chk := &commitChecker{w: w, commits: map[string]actors.NodeName{}, aborts: map[string]actors.NodeName{}, outcomes: map[string]bool{}}
	ledgers := map[actors.NodeName]*ledger{}
	cc := commit.DefaultConfig()
	cc.DataDir, cc.Mode, cc.Nodes, cc.NoSync, cc.Inline = w.DataDir, mode, w.Names(), true, true
	cc.Resource = func(node actors.NodeName) (commit.Resource, error) {
		l := ledgers[node]
		if l == nil {
			l = &ledger{prepared: map[string]bool{}, committed: map[string]bool{}, aborted: map[string]bool{}}
			ledgers[node] = l
		}
		return &ledgerResource{node: node, l: l, c: chk}, nil
	}
	cf, err := commit.New(cc)
	if err != nil {
		return err
	}
	if err := w.Start(cf); err != nil {
		return err
	}

	if err := w.Start(func() actors.Protocol { return commitClient{} }); err != nil {
		return err
	}
	// The submissions whose coordinator has not answered: a coordinator
	// that crashes takes its client (and the answer) down with it, so its
	// outcome is unknown.
	type submission struct {
		coord    actors.NodeName
		answered bool
	}
	var pending []*submission
	w.OnCrash(func(node actors.NodeName) {
		for _, s := range pending {
			if !s.answered && s.coord == node {
				s.answered = true
				w.Note(fmt.Sprintf("commit outcome at %s unknown: it crashed", node))
				w.Count("commit_outcome_unknown", 1)
			}
		}
		pending = slices.DeleteFunc(pending, func(s *submission) bool { return s.answered })
	})

	var submit func()
	submit = func() {
		w.Sched.At(w.LogUniform(10*time.Millisecond, 500*time.Millisecond), KindAction, "", "commit submit", submit)
		if w.Sched.Elapsed() > cfg.Duration-3*time.Second {
			return
		}
		up := w.Up()
		if len(up) == 0 {
			return
		}
		coord := up[w.Rand.IntN(len(up))]
		names := w.Names()
		w.Rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		var tx commit.Transaction
		for _, n := range names[:2+w.Rand.IntN(3)] {
			op := "yes"
			if w.Rand.IntN(10) == 0 {
				op = "no"
			}
			tx.Parts = append(tx.Parts, commit.Part{Node: n, Op: []byte(op)})
		}
		w.Count("commit_submitted", 1)
		sub := &submission{coord: coord}
		pending = append(pending, sub)
		_ = w.Node(coord).Tell(commitClientName, &commitSubmit{tx: tx, done: func(o commit.Outcome, err error) {
			sub.answered = true
			w.Note(fmt.Sprintf("commit outcome at %s: %s committed=%v %v", coord, o.ID, o.Committed, err))
			if err != nil || o.ID == "" {
				w.Count("commit_outcome_unknown", 1)
				return
			}
			if o.Committed {
				w.Count("commit_outcome_committed", 1)
			} else {
				w.Count("commit_outcome_aborted", 1)
			}
			chk.outcomes[o.ID] = o.Committed
			chk.check(o.ID)
		}})
	}
	w.Sched.At(time.Second, KindAction, "", "commit submit", submit)

	w.Check("nobody in doubt", func() error {
		if w.Sched.Halted() || w.Sched.Elapsed() < cfg.Duration {
			return nil // stopped early: another checker failed
		}
		for _, n := range w.Names() {
			if l := ledgers[n]; l != nil && len(l.prepared) > 0 {
				return fmt.Errorf("%s is still in doubt about %v at the end, after the nemesis", n, slices.Sorted(maps.Keys(l.prepared)))
			}
		}
		return nil
	})
	return w.Nemesis(Nemesis{
		Until: quiet, Every: w.LogUniform(100*time.Millisecond, time.Second),
		Crash: 4, Partition: 3, Burst: 2, Skew: 1,
		Downtime:     [2]time.Duration{time.Millisecond, 3 * time.Second},
		PartitionFor: [2]time.Duration{100 * time.Millisecond, 3 * time.Second},
		BurstFor:     [2]time.Duration{200 * time.Millisecond, 2 * time.Second},
		BurstFaults:  sim.Faults{Latency: time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.2, Duplicate: 0.1, Reorder: 0.2},
		MaxSkew:      time.Second, // timeouts are measured on each node's clock: a step back delays them
	})
}

// commitClient submits transactions to its node's commit protocol as
// commit.Do would, but as events (actors.Request), which the scheduler
// runs.
type commitClient struct{}

const commitClientName = "sim-commit-client"

type commitSubmit struct {
	tx   commit.Transaction
	done func(commit.Outcome, error)
}

func (commitClient) Name() actors.ProtocolName { return commitClientName }

func (commitClient) Init(ctx *actors.Context) error {
	actors.OnTell(ctx, func(ctx *actors.Context, m *commitSubmit) error {
		// No timeout short of the run: the coordinator always answers,
		// unless it crashes (and this client with it).
		err := actors.Request(ctx, commit.Name, commit.Submit{Tx: m.tx}, time.Hour,
			func(_ *actors.Context, o commit.Outcome, err error) error {
				m.done(o, err)
				return nil
			})
		if err != nil {
			m.done(commit.Outcome{}, err)
		}
		return nil
	})
	return nil
}

package simulation

import (
	"fmt"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/mutex"
	"github.com/troupe-dev/troupe/transport/sim"
)

// MutexConfig shapes the mutex scenario. The zero value is the default of
// cmd/sim.
type MutexConfig struct {
	Nodes    int           // default 5
	Duration time.Duration // virtual length; default 20s
	// Hold is the longest a holder keeps the critical section; default
	// 20ms.
	Hold time.Duration
	// Restarts makes crashed nodes come back (crash-recovery). Off by
	// default (crash-stop): a restarted node knows the others at once,
	// while they learn it rejoined only after the detection delay, and
	// Ricart–Agrawala as written lets it and another node into the
	// section together then (docs/simulation.md, findings).
	Restarts bool
}

// MutexProfiles are the fault profiles of the mutex scenario.
var MutexProfiles = []string{"crash-stop", "restarts"}

// Mutex is the scenario "mutex": the Ricart–Agrawala protocol (package
// mutex) among the live members of the simulated failure detector's view;
// every node asks for the critical section again and again, holds it for
// a while and releases it; the nemesis crashes nodes, for good unless
// MutexConfig.Restarts (a holder's section ends with its crash), and makes
// bursts of loss, duplication and reordering. No partitions and no clock
// skew:
// Ricart–Agrawala is only as safe as its failure detector, and a partition
// makes each side declare the other failed (docs/mutex.md); reliable
// delivery needs clocks that do not step back across a restart (Election).
//
// Checkers: at most one holder at a time (every grant and release, as it
// happens, in the scheduler's one order); and every request of a node that
// stayed up is granted by the end of the run.
func Mutex(cfg MutexConfig) Scenario {
	cfg.Nodes = cmpOr(cfg.Nodes, 5)
	cfg.Duration = cmpOr(cfg.Duration, 20*time.Second)
	cfg.Hold = cmpOr(cfg.Hold, 20*time.Millisecond)
	return Scenario{
		Name:        "mutex",
		Description: fmt.Sprintf("%d nodes taking turns in a Ricart–Agrawala critical section, crashes and bursts; at most one holder, every request granted", cfg.Nodes),
		Nodes:       cfg.Nodes,
		Duration:    cfg.Duration,
		Network:     sim.Faults{Latency: time.Millisecond, Jitter: 2 * time.Millisecond},
		Setup:       func(w *World) error { return setupMutex(w, cfg) },
	}
}

func setupMutex(w *World, cfg MutexConfig) error {
	quiet := cfg.Duration - 6*time.Second // the nemesis stops here
	if quiet < 2*time.Second {
		return fmt.Errorf("mutex: Duration %v leaves no time for faults and recovery; use 10s or more", cfg.Duration)
	}
	mf, err := mutex.New(mutex.Config{})
	if err != nil {
		return err
	}
	if err := w.Start(mf); err != nil {
		return err
	}
	if err := w.Start(func() actors.Protocol { return mutexClient{} }); err != nil {
		return err
	}
	var holder *mutex.Grant
	type request struct {
		node    actors.NodeName
		gen     uint64
		asked   time.Duration
		granted bool
	}
	var requests []*request
	w.OnCrash(func(node actors.NodeName) {
		if holder != nil && holder.Node == node {
			w.Note(fmt.Sprintf("mutex holder %s@%d crashed", node, holder.Timestamp))
			holder = nil // its section ends with it
		}
	})
	var ask func(node actors.NodeName)
	ask = func(node actors.NodeName) {
		n := w.Node(node)
		if n == nil || w.Sched.Elapsed() > cfg.Duration-3*time.Second {
			return // down (it asks again when it restarts) or too late to finish
		}
		rq := &request{node: node, gen: w.Detector.Generation(node), asked: w.Sched.Elapsed()}
		requests = append(requests, rq)
		w.Count("mutex_requests", 1)
		_ = n.Tell(mutexClientName, &mutexEnter{done: func(g mutex.Grant, err error) {
			if err != nil {
				w.Fail(fmt.Errorf("mutex: %s's request failed: %w", node, err))
				return
			}
			rq.granted = true
			w.Note(fmt.Sprintf("mutex %s@%d enters", g.Node, g.Timestamp))
			if holder != nil {
				w.Fail(fmt.Errorf("mutex: %s@%d entered while %s@%d held the section", g.Node, g.Timestamp, holder.Node, holder.Timestamp))
				return
			}
			w.Count("mutex_entries", 1)
			held := g
			holder = &held
			w.Sched.At(w.LogUniform(time.Microsecond, cfg.Hold), KindAction, node, "mutex release", func() {
				if holder == nil || *holder != held || w.Detector.Generation(node) != rq.gen || !w.IsUp(node) {
					return // crashed meanwhile
				}
				w.Note(fmt.Sprintf("mutex %s@%d leaves", held.Node, held.Timestamp))
				holder = nil // before the release: the protocol lets others in only after it
				_ = w.Node(node).Tell(mutexClientName, &mutexRelease{grant: held})
				w.Sched.At(w.LogUniform(time.Millisecond, 200*time.Millisecond), KindAction, node, "mutex ask", func() { ask(node) })
			})
		}})
	}
	for _, name := range w.Names() {
		w.Sched.At(w.LogUniform(time.Millisecond, time.Second), KindAction, name, "mutex ask", func() { ask(name) })
	}
	w.OnRestart(func(node actors.NodeName) {
		w.Sched.At(w.LogUniform(time.Millisecond, 200*time.Millisecond), KindAction, node, "mutex ask", func() { ask(node) })
	})
	w.Check("every request granted", func() error {
		if w.Sched.Halted() || w.Sched.Elapsed() < cfg.Duration {
			return nil // stopped early: another checker failed
		}
		for _, rq := range requests {
			if !rq.granted && w.IsUp(rq.node) && w.Detector.Generation(rq.node) == rq.gen {
				return fmt.Errorf("%s's request of %v, whose node stayed up, was never granted", rq.node, rq.asked)
			}
		}
		return nil
	})
	profile := "crash-stop"
	if cfg.Restarts {
		profile = "restarts"
	}
	w.Count("profile_"+profile, 1)
	return w.Nemesis(Nemesis{
		Until: quiet, Every: w.LogUniform(100*time.Millisecond, time.Second),
		Crash: 3, Burst: 1, CrashStop: !cfg.Restarts,
		Downtime:    [2]time.Duration{time.Millisecond, 2 * time.Second},
		BurstFor:    [2]time.Duration{200 * time.Millisecond, 2 * time.Second},
		BurstFaults: sim.Faults{Latency: time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.2, Duplicate: 0.1, Reorder: 0.2},
	})
}

// mutexClient enters and leaves its node's critical section as
// mutex.Client would, but as events (actors.Request), which the scheduler
// runs.
type mutexClient struct{}

const mutexClientName = "sim-mutex-client"

type mutexEnter struct{ done func(mutex.Grant, error) }

type mutexRelease struct{ grant mutex.Grant }

func (mutexClient) Name() actors.ProtocolName { return mutexClientName }

func (mutexClient) Init(ctx *actors.Context) error {
	actors.OnTell(ctx, func(ctx *actors.Context, m *mutexEnter) error {
		// No timeout short of the run: a request waits as long as the
		// section is busy (the checker says whether it is granted).
		err := actors.Request(ctx, mutex.Name, mutex.Enter{}, time.Hour,
			func(_ *actors.Context, g mutex.Grant, err error) error {
				m.done(g, err)
				return nil
			})
		if err != nil {
			m.done(mutex.Grant{}, err)
		}
		return nil
	})
	actors.OnTell(ctx, func(ctx *actors.Context, m *mutexRelease) error {
		logErr := func(ctx *actors.Context, _ mutex.Grant, err error) error {
			if err != nil {
				ctx.Log().Debug().Err(err).Msg("mutex release failed")
			}
			return nil
		}
		if err := actors.Request(ctx, mutex.Name, mutex.Release{Grant: m.grant}, 0, logErr); err != nil {
			return logErr(ctx, mutex.Grant{}, err)
		}
		return nil
	})
	return nil
}

// Package simulation runs whole Troupe clusters deterministically: every
// node's protocols, their timers and the simulated network run on virtual
// time under one [Scheduler] whose choices come from a seed, so one seed
// replays one run, event for event. A nemesis injects faults from the seed
// and checkers judge each run; cmd/sim sweeps seeds in parallel and replays
// a failing one with its trace.
//
// # Usage
//
// A [Scenario] builds on a [World]: it starts protocols, schedules load
// (clients are events on [World.Sched]), asks for a [Nemesis] and registers
// checkers. [Run] runs one seed:
//
//	r := simulation.Run(simulation.RaftKV(simulation.RaftKVConfig{}), 17, simulation.Options{Trace: os.Stdout})
//	fmt.Println(r.Err, r.Hash, r.Speedup())
//
// The catalog ([Names], [Lookup]) holds "raft-kv" ([RaftKV]: Raft and its
// key-value store; one leader per term, linearizability with porcupine),
// "election" ([Election]: Bully; growing terms, agreement), "jobs"
// ([Jobs]: distributed jobs; results equal a single-node run), "mutex"
// ([Mutex]: Ricart–Agrawala; at most one holder) and "commit" ([Commit]:
// two-phase commit; atomicity, nobody left in doubt).
//
// A new scenario is a Setup function: start the protocol with
// [World.Start], watch what it publishes with [Observe] (a checker's eyes:
// a probe protocol on every node) and fail the run with [World.Fail] the
// moment an invariant breaks, or at the end with [World.Check]; drive
// clients as scheduler events that Tell a small client protocol, which
// sends the requests with actors.Request and gets the replies as events;
// and add it to the catalog (catalog.go). docs/simulation.md walks through it.
//
// How the runtime is made deterministic: each node gets a virtual
// actors.Clock (timers are scheduler events) and a deterministic protoactor
// dispatcher (a mailbox with messages is run by a scheduler event, not a
// goroutine); the hub (transport/sim) runs on the scheduler
// (sim.Config.Scheduler); membership is a simulated failure detector
// ([Detector]) fed by the faults, since memberlist's timers cannot be
// owned; crypto/rand, which etcd raft draws its election timeouts from,
// follows the seed on a simulation's goroutine (cryptorand.go). Starting,
// stopping and restarting a node run its mailboxes at once on the
// scheduler's goroutine, which is how Node.Start and Node.Stop complete
// there.
//
// # Concurrency
//
// A run is single-threaded: everything happens on the goroutine that
// called Run, which is locked to its OS thread for the run. Runs on
// different goroutines share nothing and may run in parallel. A World and
// its Scheduler must not be used from other goroutines; protocols under
// simulation must not start goroutines whose results re-enter the run
// (they would arrive at wall-clock moments).
//
// # Testing
//
// TestSameSeedSameTrace runs every scenario (every raft-kv profile) twice
// with one seed and compares the trace hashes. consensus'
// TestSimulationCatchesForgottenVote shows a deliberately broken Raft
// caught within a bounded number of seeds and replayed. Longer sweeps:
// go test ./simulation -run TestSweep -simulation.seeds=200, or cmd/sim.
package simulation

package simulation

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/transport/sim"
)

// World is one run of a scenario: a cluster whose nodes, timers and
// network all run on one [Scheduler], with the failure detector, the
// nemesis and the checkers around it. A scenario's Setup builds on it. A
// World is used from the scheduler's goroutine only.
type World struct {
	// Seed is the run's seed; every random choice of the run derives
	// from it.
	Seed uint64
	// Sched is the virtual time and order of the run.
	Sched *Scheduler
	// Hub is the simulated network, on virtual time.
	Hub *sim.Hub
	// Cluster holds the nodes; start and stop them through the World
	// (Start, Crash, Restart), which runs them under control.
	Cluster *cluster.Cluster
	// Detector is the simulated failure detector: it publishes membership
	// events (package membership) on every node.
	Detector *Detector
	// Rand is the scenario's own random source (clients, the nemesis'
	// choices), seeded by Seed.
	Rand *rand.Rand
	// DataDir is a directory for the nodes' durable state
	// (DataDir/<node>/...), kept across crashes and restarts.
	DataDir string

	trace     *Trace
	nodes     map[actors.NodeName]*simNode
	names     []actors.NodeName
	down      map[actors.NodeName]bool
	groups    [][]actors.NodeName // the partition in force, nil when healed
	base      sim.Faults          // the scenario's network faults
	failures  []error
	checks    []check
	counts    map[string]int64
	observed  int // probes started
	keepGoing bool
	onCrash   []func(actors.NodeName)
	onRestart []func(actors.NodeName)
}

type simNode struct {
	clock  *nodeClock
	disp   *dispatcher
	system *actor.ActorSystem // kept across restarts (actors.Config.System)
}

type check struct {
	name string
	fn   func() error
}

// Scenario is a simulated system with its load, faults and checkers.
type Scenario struct {
	// Name is what cmd/sim calls it: "raft-kv".
	Name        string
	Description string
	Nodes       int           // cluster size
	Duration    time.Duration // virtual time the run lasts
	// Network is the hub's faults at the start (the nemesis adds bursts).
	Network sim.Faults
	// Setup starts the protocols (World.Start), the load (events on
	// World.Sched), the nemesis (World.Nemesis) and the checkers
	// (World.Check, World.Fail, Observe). It runs on the scheduler's
	// goroutine before the run begins.
	Setup func(w *World) error
}

// Options change how a run is made, not what it does: the trace of a seed
// is the same whatever they are.
type Options struct {
	// Trace receives the run's trace lines (nil: only hashed).
	Trace io.Writer
	// DataDir is the root of the nodes' durable state; "" makes a
	// temporary directory, removed after the run.
	DataDir string
	// Logger receives the nodes' logs (default: none). Logs are not part
	// of the trace.
	Logger zerolog.Logger
	// KeepGoing runs to the end after a checker failed; by default a run
	// stops at its first failure.
	KeepGoing bool
}

// Result is what one run found.
type Result struct {
	Scenario string
	Seed     uint64
	// Err is nil when every checker passed; else it joins the failures,
	// each naming the virtual time and what went wrong.
	Err error
	// Hash is the trace's SHA-256: the same seed gives the same hash.
	Hash    string
	Lines   uint64        // trace lines
	Events  uint64        // scheduler events run
	Virtual time.Duration // virtual time simulated
	Wall    time.Duration // wall-clock time it took (not in the trace)
	// Counts are the scenario's figures (operations checked, crashes,
	// partitions, leaders...), by name.
	Counts map[string]int64
}

// Speedup is virtual time over wall-clock time.
func (r Result) Speedup() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Virtual) / float64(r.Wall)
}

// CountsString lists the counts as sorted name=value pairs.
func (r Result) CountsString() string {
	keys := make([]string, 0, len(r.Counts))
	for k := range r.Counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, r.Counts[k])
	}
	return b.String()
}

// Run runs one seed of a scenario on the calling goroutine and returns what
// its checkers found. Runs on different goroutines are independent and
// may run in parallel.
func Run(sc Scenario, seed uint64, opts Options) (res Result) {
	start := time.Now()
	res = Result{Scenario: sc.Name, Seed: seed}
	if err := sc.validate(); err != nil {
		res.Err = err
		return res
	}
	unbind := bindCryptoRand(seed)
	defer unbind()

	trace := NewTrace(opts.Trace)
	w := &World{
		Seed:   seed,
		Sched:  NewScheduler(seed, trace),
		Rand:   rand.New(rand.NewPCG(seed, 0x5ce4a210)),
		trace:  trace,
		nodes:  map[actors.NodeName]*simNode{},
		down:   map[actors.NodeName]bool{},
		base:   sc.Network,
		counts: map[string]int64{},
	}
	dir := opts.DataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", fmt.Sprintf("troupe-sim-%s-%d-*", sc.Name, seed))
		if err != nil {
			res.Err = fmt.Errorf("simulation: making a data dir: %w", err)
			return res
		}
		dir = tmp
		defer os.RemoveAll(tmp)
	}
	w.DataDir = dir
	defer func() {
		if r := recover(); r != nil {
			res.Err = errors.Join(res.Err, fmt.Errorf("simulation: seed %d panicked at %v virtual: %v", seed, w.Sched.Elapsed(), r))
		}
		res.Hash, res.Lines, res.Events = trace.Hash(), trace.Lines(), w.Sched.Events()
		res.Virtual, res.Wall, res.Counts = w.Sched.Elapsed(), time.Since(start), w.counts
	}()

	if err := w.build(sc, opts); err != nil {
		res.Err = err
		return res
	}
	defer func() { res.Err = errors.Join(res.Err, w.stop()) }()
	if err := sc.Setup(w); err != nil {
		res.Err = fmt.Errorf("simulation: setting up %s: %w", sc.Name, err)
		return res
	}
	w.keepGoing = opts.KeepGoing
	w.Sched.Run(sc.Duration)
	for _, c := range w.checks {
		if err := c.fn(); err != nil {
			w.Fail(fmt.Errorf("%s: %w", c.name, err))
		}
	}
	res.Err = errors.Join(w.failures...)
	return res
}

func (sc Scenario) validate() error {
	switch {
	case sc.Name == "":
		return errors.New("simulation: a scenario needs a Name")
	case sc.Nodes < 1:
		return fmt.Errorf("simulation: scenario %s has %d nodes; it needs at least 1", sc.Name, sc.Nodes)
	case sc.Duration <= 0:
		return fmt.Errorf("simulation: scenario %s has Duration %v; it must be positive", sc.Name, sc.Duration)
	case sc.Setup == nil:
		return fmt.Errorf("simulation: scenario %s has no Setup", sc.Name)
	}
	return sc.Network.Validate()
}

// hubScheduler adapts the Scheduler to the hub's.
type hubScheduler struct{ s *Scheduler }

func (h hubScheduler) Now() time.Time { return h.s.Now() }
func (h hubScheduler) AfterFunc(d time.Duration, f func()) {
	h.s.At(d, KindNetwork, "", "", f)
}

func (w *World) build(sc Scenario, opts Options) error {
	hubCfg := sim.Config{
		Seed:      w.Seed,
		Faults:    sc.Network,
		Scheduler: hubScheduler{w.Sched},
		Observe: func(f sim.Fate, k sim.Key, b []byte) {
			w.trace.envelope(w.Sched.Elapsed(), f, k, b)
		},
	}
	w.Detector = newDetector(w)
	c, err := cluster.Local(sc.Nodes,
		cluster.Sim(hubCfg),
		cluster.Seed(w.Seed),
		cluster.Logger(opts.Logger),
		cluster.NodeConfig(func(_ int, cfg *actors.Config) {
			n := w.node(cfg.Name)
			if n.system == nil {
				log := cfg.Logger.With().Str("node", string(cfg.Name)).Str("component", "protoactor").Logger().Level(zerolog.WarnLevel)
				n.system = actor.NewActorSystem(
					actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(zerolog.NewSlogHandler(log)) }),
					actor.WithDeadLetterRequestLogging(false))
			}
			cfg.Clock = n.clock
			cfg.Dispatcher = n.disp
			cfg.System = n.system
		}))
	if err != nil {
		return fmt.Errorf("simulation: building the cluster: %w", err)
	}
	w.Cluster, w.Hub = c, c.Hub
	w.names = c.Names()
	w.Detector.startAll(w.names)
	return w.Start(w.Detector.factory())
}

// node returns the clock and dispatcher of a node name, made on first use
// (in control: the node is being built).
func (w *World) node(name actors.NodeName) *simNode {
	n := w.nodes[name]
	if n == nil {
		n = &simNode{
			clock: &nodeClock{s: w.Sched, node: name},
			disp:  &dispatcher{s: w.Sched, node: name, control: true},
		}
		w.nodes[name] = n
	}
	return n
}

// control runs fn with the named nodes (all when none) under control: their
// mailboxes run at once, so that starting and stopping them completes on
// this goroutine.
func (w *World) control(fn func() error, names ...actors.NodeName) error {
	if len(names) == 0 {
		names = w.names
	}
	for _, name := range names {
		w.node(name).disp.takeControl()
	}
	defer func() {
		for _, name := range names {
			w.node(name).disp.releaseControl()
		}
	}()
	return fn()
}

func (w *World) stop() error {
	if w.Cluster == nil {
		return nil
	}
	err := w.control(w.Cluster.Stop)
	for _, n := range w.nodes {
		if n.system != nil {
			n.system.Shutdown()
		}
	}
	return err
}

// Names lists the node names in order.
func (w *World) Names() []actors.NodeName { return slices.Clone(w.names) }

// Up lists the nodes that run now, in name order.
func (w *World) Up() []actors.NodeName {
	var up []actors.NodeName
	for _, n := range w.names {
		if !w.down[n] {
			up = append(up, n)
		}
	}
	return up
}

// IsUp tells whether a node runs now.
func (w *World) IsUp(name actors.NodeName) bool { return !w.down[name] }

// Node is a running node (nil when it is down).
func (w *World) Node(name actors.NodeName) *actors.Node {
	if w.down[name] {
		return nil
	}
	return w.Cluster.Node(name)
}

// Start starts a protocol on every running node, and on each node
// restarted later.
func (w *World) Start(f actors.Factory) error {
	return w.control(func() error { return w.Cluster.Start(f) }, w.Up()...)
}

// Crash stops a node as a crash would (its protocols' state is lost, its
// data dir stays), and tells the failure detector.
func (w *World) Crash(name actors.NodeName) error {
	if w.down[name] {
		return fmt.Errorf("simulation: crashing %s: it is down already", name)
	}
	w.Note("crash " + string(name))
	w.down[name] = true
	err := w.control(func() error { return w.Cluster.Crash(name) }, name)
	w.Detector.crashed(name)
	for _, fn := range w.onCrash {
		fn(name)
	}
	return err
}

// OnCrash calls fn with the name of every node that crashes, after it
// stopped: a checker's cue that what the node held (a lock, a lease) is
// gone with it.
func (w *World) OnCrash(fn func(node actors.NodeName)) { w.onCrash = append(w.onCrash, fn) }

// OnRestart calls fn with the name of every node that restarts, after its
// protocols started: a scenario's cue to give it load again.
func (w *World) OnRestart(fn func(node actors.NodeName)) { w.onRestart = append(w.onRestart, fn) }

// Restart brings a crashed node back with every protocol started so far,
// from its data dir.
func (w *World) Restart(name actors.NodeName) error {
	if !w.down[name] {
		return fmt.Errorf("simulation: restarting %s: it is running", name)
	}
	w.Note("restart " + string(name))
	delete(w.down, name)
	w.Detector.started(name)
	err := w.control(func() error {
		_, err := w.Cluster.Restart(name)
		return err
	}, name)
	if err == nil {
		for _, fn := range w.onRestart {
			fn(name)
		}
	}
	return err
}

// Partition cuts the network into groups (nodes in no group form one
// more), as Hub.Partition, and tells the failure detector.
func (w *World) Partition(groups ...[]actors.NodeName) {
	w.Note(fmt.Sprintf("partition %v", groups))
	w.groups = groups
	w.Cluster.Partition(groups...)
	w.Detector.changed()
}

// Heal lifts the partition.
func (w *World) Heal() {
	w.Note("heal")
	w.groups = nil
	w.Hub.Heal()
	w.Detector.changed()
}

// reachable tells whether a and b are on the same side of the partition.
func (w *World) reachable(a, b actors.NodeName) bool {
	if w.groups == nil || a == b {
		return true
	}
	return w.groupOf(a) == w.groupOf(b)
}

func (w *World) groupOf(n actors.NodeName) int {
	for i, g := range w.groups {
		if slices.Contains(g, n) {
			return i + 1
		}
	}
	return 0
}

// SetFaults changes the network's faults (a burst); RestoreFaults goes back
// to the scenario's.
func (w *World) SetFaults(f sim.Faults) error {
	w.Note(fmt.Sprintf("faults loss=%.2f dup=%.2f reorder=%.2f", f.Loss, f.Duplicate, f.Reorder))
	return w.Hub.SetFaults(f)
}

// SetNetwork replaces the scenario's network faults (the ones bursts go
// back to) and applies them.
func (w *World) SetNetwork(f sim.Faults) error {
	if err := w.Hub.SetFaults(f); err != nil {
		return err
	}
	w.base = f
	w.Note(fmt.Sprintf("network latency=%v jitter=%v loss=%.2f dup=%.2f reorder=%.2f", f.Latency, f.Jitter, f.Loss, f.Duplicate, f.Reorder))
	return nil
}

// RestoreFaults sets the scenario's network faults again.
func (w *World) RestoreFaults() {
	w.Note("faults restored")
	_ = w.Hub.SetFaults(w.base)
}

// SetSkew sets a node's clock offset from virtual time (what Context.Now
// reads there); it stays across restarts.
func (w *World) SetSkew(name actors.NodeName, skew time.Duration) {
	w.Note(fmt.Sprintf("skew %s %v", name, skew))
	w.node(name).clock.skew = skew
}

// Note adds a line to the trace.
func (w *World) Note(text string) { w.trace.note(w.Sched.Elapsed(), text) }

// Count adds n to a figure of the run's Result.
func (w *World) Count(name string, n int64) { w.counts[name] += n }

// Fail records a checker's failure, with the virtual time, and ends the
// run after the current event (unless Options.KeepGoing).
func (w *World) Fail(err error) {
	err = fmt.Errorf("at %v: %w", w.Sched.Elapsed(), err)
	w.Note("FAIL " + err.Error())
	w.failures = append(w.failures, err)
	if !w.keepGoing {
		w.Sched.Halt()
	}
}

// Check registers a checker that runs when the run ends (also when it
// ended early); an error fails the run.
func (w *World) Check(name string, fn func() error) {
	w.checks = append(w.checks, check{name: name, fn: fn})
}

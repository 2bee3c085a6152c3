package simulation

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/transport/sim"
)

// RaftKVConfig shapes the raft-kv scenario. The zero value is the default
// scenario of cmd/sim.
type RaftKVConfig struct {
	Nodes    int           // voters; default 5
	Duration time.Duration // virtual length; default 20s
	Clients  int           // concurrent clients; default 4
	Keys     int           // distinct keys; default 3
	// Think is a client's mean pause between two operations; default 200ms.
	Think time.Duration
	// Network is the network's faults outside bursts; by default each
	// seed's profile draws it: 1 ms of latency plus a jitter.
	Network sim.Faults
	// Raft changes the consensus configuration of every node (a test
	// breaks it on purpose here).
	Raft func(*consensus.Config)
	// Profile forces a fault profile ("mixed", "crash-storm" or
	// "partitions"); "" lets each seed draw one.
	Profile string
	// Nemesis changes the nemesis (which is already filled in).
	Nemesis func(*Nemesis)
}

// RaftKVProfiles are the fault profiles of raft-kv (see RaftKVConfig).
var RaftKVProfiles = []string{"mixed", "crash-storm", "partitions"}

// RaftKV is the scenario "raft-kv": a group of Raft nodes (package
// consensus, default timings, logs in data dirs) replicating the key-value
// store; clients inside the simulation issue gets, puts, deletes and
// compare-and-sets to random running nodes; the nemesis crashes and
// restarts nodes (the leader half the time), partitions the network,
// makes bursts of loss, duplication and reordering and skews clocks.
//
// Each seed draws its own fault profile (swarm testing, see
// raftKVProfile): mixed faults, crash storms or partitions, and the
// network's jitter, so that a sweep covers calm runs and frantic ones.
//
// Checkers: at most one leader per term (every node's own claims, as
// consensus.LeadershipChanged, checked as they happen); the history of the
// clients' operations is linearizable (porcupine, at the end); and the
// group serves writes again after the nemesis (liveness, at the end).
func RaftKV(cfg RaftKVConfig) Scenario {
	cfg.Nodes = cmpOr(cfg.Nodes, 5)
	cfg.Duration = cmpOr(cfg.Duration, 20*time.Second)
	cfg.Clients = cmpOr(cfg.Clients, 4)
	cfg.Keys = cmpOr(cfg.Keys, 3)
	cfg.Think = cmpOr(cfg.Think, 200*time.Millisecond)
	return Scenario{
		Name:        "raft-kv",
		Description: fmt.Sprintf("%d-node Raft group with its key-value store, %d clients, crashes/partitions/bursts/skew; checks one leader per term and linearizability", cfg.Nodes, cfg.Clients),
		Nodes:       cfg.Nodes,
		Duration:    cfg.Duration,
		Network:     cfg.Network,
		Setup:       func(w *World) error { return setupRaftKV(w, cfg) },
	}
}

func cmpOr[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

func setupRaftKV(w *World, cfg RaftKVConfig) error {
	rc := consensus.DefaultConfig()
	rc.DataDir = w.DataDir
	rc.Peers = w.Names()
	rc.Machines = []consensus.Machine{kv.DefaultMachine()}
	// A crash here is a process crash: what bbolt wrote is in the page
	// cache and survives; fsync would only cost time.
	rc.NoSync = true
	rc.Inline = true // the disk writes on the scheduler's goroutine, as everything here
	rc.RequestTimeout = 2 * time.Second
	rc.SnapshotEntries, rc.CatchUpEntries = 200, 50 // snapshots and catch-up by snapshot happen in a run
	if cfg.Raft != nil {
		cfg.Raft(&rc)
	}
	leaders := NewLeaderPerTerm(w, "raft")
	if err := Observe(w, func(node actors.NodeName, ev *consensus.LeadershipChanged) {
		leaders.Saw(node, ev.Leader, ev.Term)
	}); err != nil {
		return err
	}
	rf, err := consensus.New(rc)
	if err != nil {
		return err
	}
	if err := w.Start(rf); err != nil {
		return err
	}

	if cfg.Profile != "" && !slices.Contains(RaftKVProfiles, cfg.Profile) {
		return fmt.Errorf("unknown profile %q; valid: %v", cfg.Profile, RaftKVProfiles)
	}
	n, jitter, profile := raftKVProfile(w, cfg.Duration, cfg.Profile, leaders.Current)
	w.Note("profile " + profile)
	w.Count("profile_"+profile, 1)
	if cfg.Network == (sim.Faults{}) {
		if err := w.SetNetwork(sim.Faults{Latency: time.Millisecond, Jitter: jitter}); err != nil {
			return err
		}
	}
	if cfg.Nemesis != nil {
		cfg.Nemesis(&n)
	}
	kv := newKVClients(w, cfg, rc.RequestTimeout, n.Until+2*time.Second)
	if err := kv.start(); err != nil {
		return err
	}
	w.Check("linearizable", kv.check)
	w.Check("available after the nemesis", kv.recovered)
	return w.Nemesis(n)
}

// raftKVProfile draws the run's fault profile (swarm testing: each seed
// stresses the group its own way):
//
//   - mixed (half the seeds): a fault every 100ms–1s on average, of every
//     kind; nodes down for 1ms–3s; jitter 1–10ms;
//   - crash-storm (a quarter): a crash every 50ms, each node back within
//     1–30ms, on a network with 20–60ms of jitter, so that restarts fall
//     between the messages of an election;
//   - partitions (a quarter): partitions only, every 100–500ms, lasting
//     10ms–2s; jitter 1–10ms.
//
// Durations are drawn log-uniformly; the nemesis stops at 3/4 of the run.
func raftKVProfile(w *World, d time.Duration, profile string, leader func() actors.NodeName) (n Nemesis, jitter time.Duration, name string) {
	n = Nemesis{
		Until:        d * 3 / 4,
		PartitionFor: [2]time.Duration{200 * time.Millisecond, 3 * time.Second},
		BurstFor:     [2]time.Duration{200 * time.Millisecond, 2 * time.Second},
		BurstFaults:  sim.Faults{Latency: time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.2, Duplicate: 0.1, Reorder: 0.2},
		MaxSkew:      5 * time.Second,
		Victim:       leader,
	}
	r := w.Rand.IntN(4)
	switch profile {
	case "mixed":
		r = 0
	case "crash-storm":
		r = 2
	case "partitions":
		r = 3
	}
	switch {
	case r < 2:
		name = "mixed"
		n.Every = w.LogUniform(100*time.Millisecond, time.Second)
		n.Crash, n.Partition, n.Burst, n.Skew = 4, 3, 2, 1
		n.Downtime = [2]time.Duration{time.Millisecond, 3 * time.Second}
		jitter = w.LogUniform(time.Millisecond, 10*time.Millisecond)
	case r == 2:
		name = "crash-storm"
		n.Every = 50 * time.Millisecond
		n.Crash, n.Skew = 10, 1
		n.Downtime = [2]time.Duration{time.Millisecond, 30 * time.Millisecond}
		jitter = w.LogUniform(20*time.Millisecond, 60*time.Millisecond)
	default:
		name = "partitions"
		n.Every = w.LogUniform(100*time.Millisecond, 500*time.Millisecond)
		n.Partition = 1
		n.PartitionFor = [2]time.Duration{10 * time.Millisecond, 2 * time.Second}
		jitter = w.LogUniform(time.Millisecond, 10*time.Millisecond)
	}
	return n, jitter, name
}

// LeaderPerTerm checks that no two nodes claim the leadership of the same
// term: feed it every (node, leader, term) a node believes in. Only claims
// of a node about itself count: a follower's belief is a rumour.
type LeaderPerTerm struct {
	w       *World
	what    string
	leaders map[uint64]actors.NodeName
	current actors.NodeName // the latest claim
	terms   map[actors.NodeName]uint64
}

// NewLeaderPerTerm makes the checker; what names the protocol in failures.
func NewLeaderPerTerm(w *World, what string) *LeaderPerTerm {
	return &LeaderPerTerm{w: w, what: what, leaders: map[uint64]actors.NodeName{}, terms: map[actors.NodeName]uint64{}}
}

// Saw records that node believes leader leads term.
func (l *LeaderPerTerm) Saw(node, leader actors.NodeName, term uint64) {
	if leader == "" {
		if l.current == node {
			l.current = ""
		}
		return
	}
	if leader != node {
		return
	}
	l.w.Note(fmt.Sprintf("%s leader %s term %d", l.what, node, term))
	l.current = node
	if prev, ok := l.leaders[term]; ok && prev != node {
		l.w.Fail(fmt.Errorf("%s: two leaders in term %d: %s and %s", l.what, term, prev, node))
		return
	}
	if _, ok := l.leaders[term]; !ok {
		l.w.Count(l.what+"_terms_with_leader", 1)
	}
	l.leaders[term] = node
}

// Current is the node that claimed the leadership last ("" if it gave it
// up).
func (l *LeaderPerTerm) Current() actors.NodeName { return l.current }

// definite tells whether err means the operation certainly did not happen.
func definite(err error) bool {
	return errors.Is(err, consensus.ErrNotApplied) ||
		errors.Is(err, actors.ErrNodeStopped) || errors.Is(err, actors.ErrUnknownProtocol) ||
		errors.Is(err, actors.ErrProtocolStopped)
}

// kvClients are the simulation's clients of the key-value store: each
// issues one operation at a time to a random running node, as an event,
// and records it in the history when it returns (or times out). The
// operation goes to the node's kvClientProtocol, which sends it to raft as
// a request (actors.Request) and gets the reply as an event of its own.
type kvClients struct {
	w       *World
	cfg     RaftKVConfig
	timeout time.Duration
	keys    []string
	history []porcupine.Operation
	// calls holds each client's latest operation: one that is not done
	// when the run ends is still in flight, and a write in flight may
	// have taken effect (check).
	calls   []*kvCall
	quietAt time.Duration // the nemesis is over and the group had time to recover
	okAfter int           // successful operations after quietAt
}

// kvClientProtocol runs on every node: the clients' end of their requests.
const kvClientProtocol = "sim-kv-client"

// kvCall is one operation of a client, Told to kvClientProtocol on the
// node it goes through.
type kvCall struct {
	client, i int
	in        consensustest.Input
	call      time.Duration // when it was issued
	timer     Handle        // the client's timeout
	done      bool
}

func newKVClients(w *World, cfg RaftKVConfig, raftTimeout, quietAt time.Duration) *kvClients {
	c := &kvClients{w: w, cfg: cfg, timeout: raftTimeout + 500*time.Millisecond, quietAt: quietAt, calls: make([]*kvCall, cfg.Clients)}
	for i := range cfg.Keys {
		c.keys = append(c.keys, fmt.Sprintf("k%d", i))
	}
	return c
}

func (c *kvClients) start() error {
	if err := c.w.Start(func() actors.Protocol { return &kvClientProto{c: c} }); err != nil {
		return err
	}
	for id := range c.cfg.Clients {
		c.w.Sched.At(time.Second+c.think(), KindAction, "", fmt.Sprintf("client %d", id), func() { c.issue(id, 0) })
	}
	return nil
}

func (c *kvClients) think() time.Duration {
	return time.Duration(c.w.Rand.Int64N(int64(2 * c.cfg.Think)))
}

// issue sends operation i of client id to a random running node.
func (c *kvClients) issue(id, i int) {
	w := c.w
	up := w.Up()
	if len(up) == 0 {
		c.next(id, i)
		return
	}
	node := up[w.Rand.IntN(len(up))]
	in := consensustest.Input{Key: c.keys[w.Rand.IntN(len(c.keys))], Value: fmt.Sprintf("c%d-%d", id, i)}
	switch r := w.Rand.IntN(10); {
	case r < 4:
		in.Op = kv.OpGet
	case r < 8:
		in.Op = kv.OpPut
	case r < 9:
		in.Op = kv.OpCAS
		in.Prev = fmt.Sprintf("c%d-%d", w.Rand.IntN(c.cfg.Clients), max(0, i-w.Rand.IntN(3)))
	default:
		in.Op = kv.OpDelete
	}
	k := &kvCall{client: id, i: i, in: in, call: w.Sched.Elapsed()}
	c.calls[id] = k
	w.Note(fmt.Sprintf("client %d %s %s %q at %s", id, in.Op, in.Key, in.Value, node))
	k.timer = w.Sched.At(c.timeout, KindAction, "", fmt.Sprintf("client %d timeout", id), func() { c.finish(k, kv.Result{}, nil, true) })
	if err := w.Node(node).Tell(kvClientProtocol, k); err != nil {
		c.finish(k, kv.Result{}, err, false)
	}
}

func (c *kvClients) next(id, i int) {
	c.w.Sched.At(c.think(), KindAction, "", fmt.Sprintf("client %d", id), func() { c.issue(id, i+1) })
}

// finish records the outcome of k (r, or err when the request failed, or
// timedOut) and schedules the client's next operation.
func (c *kvClients) finish(k *kvCall, r kv.Result, err error, timedOut bool) {
	if k.done {
		return
	}
	k.done = true
	k.timer.Stop()
	w, id, in := c.w, k.client, k.in
	ret := w.Sched.Elapsed()
	op := porcupine.Operation{ClientId: id, Input: in, Call: int64(k.call), Return: int64(ret),
		Output: consensustest.Output{OK: r.OK, Found: r.Found, Value: string(r.Value)}}
	outcome := "ok"
	switch {
	case timedOut:
		outcome = "timeout"
	case err != nil:
		outcome = "error " + err.Error()
	}
	w.Note(fmt.Sprintf("client %d %s %s -> %s ok=%v found=%v value=%q", id, in.Op, in.Key, outcome, r.OK, r.Found, r.Value))
	defer c.next(id, k.i)
	switch {
	case !timedOut && err == nil:
		if ret >= c.quietAt {
			c.okAfter++
		}
		w.Count("kv_ops_ok", 1)
	case !timedOut && definite(err):
		w.Count("kv_ops_refused", 1)
		return
	default:
		w.Count("kv_ops_unknown", 1)
		if op, ok := unknownOp(k); ok {
			c.history = append(c.history, op)
		}
		return
	}
	c.history = append(c.history, op)
}

// unknownOp is k, whose outcome the client never learned (a timeout, an
// error that leaves it open, or the end of the run), as an operation that
// may have taken effect at any moment after its call, or never: a write
// that returns at infinity (porcupine). A read without an answer has no
// effect: ok is false.
func unknownOp(k *kvCall) (op porcupine.Operation, ok bool) {
	in := k.in
	if in.Op == kv.OpGet {
		return op, false
	}
	in.Unknown = true
	return porcupine.Operation{ClientId: k.client, Input: in, Call: int64(k.call), Return: math.MaxInt64,
		Output: consensustest.Output{}}, true
}

// kvClientProto is kvClientProtocol: it sends each kvCall to the node's
// raft protocol as a request. Its reply (or failure) is the call's
// outcome unless the client timed out first; a call lost with a crashed
// node ends by the client's timeout.
type kvClientProto struct{ c *kvClients }

func (p *kvClientProto) Name() actors.ProtocolName { return kvClientProtocol }

func (p *kvClientProto) Init(ctx *actors.Context) error {
	actors.OnTell(ctx, func(ctx *actors.Context, k *kvCall) error {
		req := kv.Request{Op: k.in.Op, Key: k.in.Key}
		if k.in.Op == kv.OpPut || k.in.Op == kv.OpCAS {
			req.Value = []byte(k.in.Value)
		}
		if k.in.Op == kv.OpCAS {
			req.Prev = []byte(k.in.Prev)
		}
		// Longer than the client's own timeout, which decides.
		err := actors.Request(ctx, consensus.Name, req, p.c.timeout+time.Second, func(_ *actors.Context, r kv.Result, err error) error {
			p.c.finish(k, r, err, false)
			return nil
		})
		if err != nil {
			p.c.finish(k, kv.Result{}, err, false)
		}
		return nil
	})
	return nil
}

// check runs porcupine on the history, with the operations still in
// flight (final).
func (c *kvClients) check() error {
	history := c.final()
	c.w.Count("kv_ops_checked", int64(len(history)))
	res, _ := porcupine.CheckOperationsVerbose(consensustest.Model, history, 30*time.Second)
	switch res {
	case porcupine.Ok:
		return nil
	case porcupine.Illegal:
		return fmt.Errorf("the history of %d operations is not linearizable", len(history))
	default:
		return fmt.Errorf("porcupine could not decide on %d operations in 30s", len(history))
	}
}

// final is the history to check when the run ends: the operations that
// returned, and the writes still in flight as unknown (unknownOp). A write
// the client is still waiting for may have been applied already, and read
// by another client; left out, that read would be of a value nobody wrote.
func (c *kvClients) final() []porcupine.Operation {
	history := slices.Clone(c.history)
	for _, k := range c.calls {
		if k == nil || k.done {
			continue
		}
		if op, ok := unknownOp(k); ok {
			history = append(history, op)
		}
	}
	return history
}

// recovered checks liveness: operations succeed once the nemesis is over.
func (c *kvClients) recovered() error {
	if c.w.Sched.Halted() || c.w.Sched.Elapsed() < c.cfg.Duration {
		return nil // the run stopped early: another checker failed
	}
	if c.quietAt < c.cfg.Duration && c.okAfter == 0 {
		return fmt.Errorf("no operation succeeded in the last %v, after the nemesis ended", c.cfg.Duration-c.quietAt)
	}
	return nil
}

package consensus_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/transport/sim"
)

var (
	flagSeeds    = flag.Int("consensus.seeds", 0, "seeds of the linearizability sweep (default 100, 12 under -race)")
	flagParallel = flag.Int("consensus.parallel", 8, "seeds of the sweep run at once")
)

// definite tells whether err means the operation certainly did not happen:
// the history leaves it out, so a "not applied" that did apply is caught.
func definite(err error) bool {
	return errors.Is(err, consensus.ErrNotApplied) ||
		errors.Is(err, actors.ErrNodeStopped) || errors.Is(err, actors.ErrUnknownProtocol) ||
		errors.Is(err, actors.ErrProtocolStopped)
}

// seedRun is one run of the sweep: a 3-node group on a lossy, duplicating,
// reordering sim network, concurrent clients on random nodes, and a
// nemesis (partitions, crashes, restarts from the data dirs) chosen by the
// seed.
type seedRun struct {
	seed     uint64
	ops      int // operations in the history
	unknown  int // of them, with an unknown outcome
	nemesis  string
	restarts int
	nodes    int
}

func runSeed(seed uint64, dir string) (res seedRun, err error) {
	res.seed = seed
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	faults := sim.Faults{Loss: 0.05, Duplicate: 0.05, Reorder: 0.1}
	nodes := 3
	if seed%5 == 0 {
		nodes = 5 // one seed in five runs a 5-node group
	}
	res.nodes = nodes
	c, err := cluster.Local(nodes, cluster.Sim(sim.Config{Seed: seed, Faults: faults}), cluster.Seed(seed))
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, c.Stop()) }()
	cfg := testConfig(dir, c.Names())
	cfg.SnapshotEntries, cfg.CatchUpEntries = 40, 10 // snapshots and catch-up by snapshot happen during the run
	rf, err := consensus.New(cfg)
	if err != nil {
		return res, err
	}
	if err := c.Start(rf); err != nil {
		return res, err
	}
	if err := waitLeader(c, 5*time.Second); err != nil {
		return res, err
	}

	names := c.Names()
	base := time.Now()
	var mu sync.Mutex
	var history []porcupine.Operation
	var stop atomic.Bool
	var wg sync.WaitGroup
	const clients = 4
	keys := []string{"x", "y"}
	for ci := range clients {
		crng := rand.New(rand.NewPCG(seed, uint64(ci)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				node := c.Node(names[crng.IntN(len(names))])
				in := consensustest.Input{Op: kv.Op(1 + crng.IntN(4)), Key: keys[crng.IntN(len(keys))]}
				in.Value = fmt.Sprintf("c%d-%d", ci, i)
				in.Prev = fmt.Sprintf("c%d-%d", crng.IntN(clients), max(0, i-crng.IntN(3)))
				if node == nil {
					continue // crashed
				}
				kc, err := kv.NewClient(node)
				if err != nil {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
				call := time.Since(base).Nanoseconds()
				r, err := kc.Do(ctx, kv.Request{Op: in.Op, Key: in.Key, Value: []byte(in.Value), Prev: []byte(in.Prev)})
				ret := time.Since(base).Nanoseconds()
				cancel()
				op := porcupine.Operation{ClientId: ci, Input: in, Call: call, Return: ret,
					Output: consensustest.Output{OK: r.OK, Found: r.Found, Value: string(r.Value)}}
				switch {
				case err == nil:
				case definite(err):
					continue
				case in.Op == kv.OpGet:
					continue // a read without an answer has no effect
				default:
					in.Unknown = true
					op.Input, op.Output, op.Return = in, consensustest.Output{}, math.MaxInt64
				}
				mu.Lock()
				history = append(history, op)
				mu.Unlock()
			}
		}()
	}

	// The nemesis.
	pause := func(d time.Duration) { <-time.After(d) } // pacing of the scenario, not synchronisation
	victim := names[rng.IntN(len(names))]
	switch seed % 4 {
	case 0:
		minority := []actors.NodeName{victim}
		if nodes == 5 {
			minority = append(minority, names[(slices.Index(names, victim)+1)%nodes])
		}
		res.nemesis = fmt.Sprintf("partition %v away, heal", minority)
		pause(80 * time.Millisecond)
		c.Partition(minority)
		pause(300 * time.Millisecond)
		c.Hub.Heal()
	case 1:
		res.nemesis = "crash " + string(victim) + ", restart from its data dir"
		pause(80 * time.Millisecond)
		if err := c.Crash(victim); err != nil {
			return res, err
		}
		pause(200 * time.Millisecond)
		if _, err := c.Restart(victim); err != nil {
			return res, err
		}
		res.restarts++
	case 2:
		leader, _ := leaderOf(c)
		if leader == "" {
			leader = victim
		}
		res.nemesis = "crash the leader " + string(leader) + ", restart"
		pause(80 * time.Millisecond)
		if err := c.Crash(leader); err != nil {
			return res, err
		}
		pause(250 * time.Millisecond)
		if _, err := c.Restart(leader); err != nil {
			return res, err
		}
		res.restarts++
	case 3:
		other := names[(slices.Index(names, victim)+1)%len(names)]
		res.nemesis = "partition " + string(victim) + " one way from " + string(other) + ", then crash and restart " + string(other)
		pause(50 * time.Millisecond)
		c.Hub.Block(string(victim), string(other))
		pause(150 * time.Millisecond)
		c.Hub.Heal()
		if err := c.Crash(other); err != nil {
			return res, err
		}
		pause(150 * time.Millisecond)
		if _, err := c.Restart(other); err != nil {
			return res, err
		}
		res.restarts++
	}
	// Operations after the recovery: a count, not a time, so that a
	// loaded host (CI runs the packages side by side on 2 cores) checks
	// as much history as an idle one.
	mu.Lock()
	healed := len(history)
	mu.Unlock()
	pause(150 * time.Millisecond)
	_ = actortest.WaitFor(20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(history)-healed >= 12
	})
	stop.Store(true)
	wg.Wait()

	for _, op := range history {
		if op.Input.(consensustest.Input).Unknown {
			res.unknown++
		}
	}
	res.ops = len(history)
	result, info := porcupine.CheckOperationsVerbose(consensustest.Model, history, 20*time.Second)
	switch result {
	case porcupine.Ok:
		return res, nil
	case porcupine.Illegal:
		f, ferr := os.CreateTemp("", fmt.Sprintf("troupe-raft-seed-%d-*.html", seed))
		if ferr == nil {
			_ = porcupine.Visualize(consensustest.Model, info, f)
			_ = f.Close()
		}
		name := "(no visualisation)"
		if f != nil {
			name = f.Name()
		}
		return res, fmt.Errorf("seed %d (%s): history of %d operations is NOT linearizable; visualisation in %s", seed, res.nemesis, res.ops, name)
	default:
		return res, fmt.Errorf("seed %d (%s): the linearizability check of %d operations timed out", seed, res.nemesis, res.ops)
	}
}

// leaderOf is the leader every running node agrees on, if any.
func leaderOf(c *cluster.Cluster) (actors.NodeName, bool) {
	var lead actors.NodeName
	for _, n := range c.Nodes() {
		kc, err := kv.NewClient(n)
		if err != nil {
			return "", false
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := kc.Status(ctx)
		cancel()
		if err != nil || st.Leader == "" || (lead != "" && lead != st.Leader) {
			return "", false
		}
		lead = st.Leader
	}
	return lead, lead != ""
}

func waitLeader(c *cluster.Cluster, timeout time.Duration) error {
	return actortest.WaitFor(timeout, func() bool { _, ok := leaderOf(c); return ok })
}

// TestLinearizableUnderFaults is the sweep: every history must be
// linearizable. -consensus.seeds=N runs a longer one.
func TestLinearizableUnderFaults(t *testing.T) {
	seeds := 100
	if actortest.RaceEnabled {
		seeds = 12
	}
	if testing.Short() {
		seeds = 20
	}
	if *flagSeeds > 0 {
		seeds = *flagSeeds
	}
	root := t.TempDir()
	sem := make(chan struct{}, *flagParallel)
	var mu sync.Mutex
	var runs []seedRun
	var wg sync.WaitGroup
	for s := 1; s <= seeds; s++ {
		seed := uint64(s)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := runSeed(seed, fmt.Sprintf("%s/seed-%d", root, seed))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			runs = append(runs, r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	ops, unknown, restarts, five := 0, 0, 0, 0
	minOps := math.MaxInt
	for _, r := range runs {
		if r.nodes == 5 {
			five++
		}
		ops += r.ops
		unknown += r.unknown
		restarts += r.restarts
		minOps = min(minOps, r.ops)
	}
	t.Logf("%d seeds (%d of them 5-node groups): %d operations checked (%d with unknown outcome), at least %d per seed, %d restarts from data dirs",
		len(runs), five, ops, unknown, minOps, restarts)
	if minOps < 10 {
		t.Errorf("a seed produced only %d operations: the history is too small to check anything", minOps)
	}
}

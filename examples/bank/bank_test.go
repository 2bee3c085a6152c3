package bank_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/commit"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/examples/bank"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/mutex"
	"github.com/troupe-dev/troupe/transport/sim"
)

var flagSeeds = flag.Int("bank.seeds", 1, "seeds of the concurrent-transfer test, per mode")

const (
	nodes    = 4
	accounts = 3 // per node
	opening  = 1000
)

// sent is one transfer as its client saw it.
type sent struct {
	id           string            // "" when refused or unknown
	participants []actors.NodeName // sorted
	committed    bool
	known        bool // the client learnt the outcome
}

// TestConcurrentTransfersUnderFaults runs clients that transfer money
// between accounts of four nodes' ledgers, through random coordinators, on
// a network that loses, duplicates and reorders messages, while nodes
// crash and restart from their data dirs. Once the faults stop and the
// cluster settles: the total is what it was, no balance is negative,
// nothing is left prepared, every transaction committed at all its
// participants or at none, and every outcome a client was told is what
// the ledgers hold.
func TestConcurrentTransfersUnderFaults(t *testing.T) {
	for _, mode := range []commit.Mode{commit.Textbook, commit.Consensus} {
		for seed := range uint64(*flagSeeds) {
			t.Run(fmt.Sprintf("%s/seed=%d", mode, seed+1), func(t *testing.T) {
				t.Parallel()
				runTransfers(t, mode, seed+1)
			})
		}
	}
}

func runTransfers(t *testing.T, mode commit.Mode, seed uint64) {
	dir := t.TempDir()
	faults := sim.Faults{Loss: 0.05, Duplicate: 0.05, Reorder: 0.1}
	c := clustertest.NewCluster(t, nodes, cluster.Sim(sim.Config{Seed: seed, Faults: faults}), cluster.Seed(seed))
	opened := map[actors.NodeName]map[string]int64{}
	for _, n := range c.Names() {
		opened[n] = map[string]int64{}
		for i := range accounts {
			opened[n][fmt.Sprintf("acct-%d", i)] = opening
		}
	}
	b, err := bank.New(bank.Config{DataDir: dir, Accounts: opened, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if mode == commit.Consensus {
		rc := consensus.DefaultConfig()
		rc.Machines = []consensus.Machine{kv.DefaultMachine(), mutex.LockMachine()}
		rc.DataDir, rc.Peers, rc.NoSync = dir, c.Names(), true
		rc.TickInterval, rc.RequestTimeout = 10*time.Millisecond, time.Second
		rf, err := consensus.New(rc)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(rf); err != nil {
			t.Fatal(err)
		}
	}
	cfg := commit.DefaultConfig()
	cfg.DataDir, cfg.Resource, cfg.Mode, cfg.NoSync = dir, b.Resource, mode, true
	cfg.VoteTimeout, cfg.PrepareTimeout, cfg.AbandonAfter = 300*time.Millisecond, 150*time.Millisecond, 600*time.Millisecond
	cfg.RetryInterval, cfg.MaxRetryInterval = 10*time.Millisecond, 100*time.Millisecond
	cf, err := commit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(cf); err != nil {
		t.Fatal(err)
	}

	var (
		mu    sync.Mutex
		log   []sent
		stop  atomic.Bool
		wg    sync.WaitGroup
		names = c.Names()
	)
	const clients = 4
	for ci := range clients {
		rng := rand.New(rand.NewPCG(seed, uint64(ci)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				coord := c.Node(names[rng.IntN(nodes)])
				from := bank.Account{Node: names[rng.IntN(nodes)], Name: fmt.Sprintf("acct-%d", rng.IntN(accounts))}
				to := bank.Account{Node: names[rng.IntN(nodes)], Name: fmt.Sprintf("acct-%d", rng.IntN(accounts))}
				if coord == nil || from == to {
					continue
				}
				tx, err := bank.Transfer(from, to, 1+rng.Int64N(400))
				if err != nil {
					t.Error(err)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				out, err := commit.Do(ctx, coord, tx)
				cancel()
				s := sent{id: out.ID, committed: out.Committed, known: err == nil}
				for _, p := range tx.Parts {
					s.participants = append(s.participants, p.Node)
				}
				slices.Sort(s.participants)
				switch {
				case err == nil, errors.Is(err, commit.ErrStopped), errors.Is(err, commit.ErrTimeout):
				case errors.Is(err, actors.ErrUnknownProtocol), errors.Is(err, actors.ErrNodeStopped):
					continue // the node is crashing or restarting: not submitted
				default:
					if !stop.Load() && c.Node(coord.Name()) != nil {
						t.Errorf("a transfer through %s: %v", coord.Name(), err)
					}
				}
				mu.Lock()
				log = append(log, s)
				mu.Unlock()
			}
		}()
	}

	// The nemesis: crash a node, restart it, five times over.
	rng := rand.New(rand.NewPCG(seed, 99))
	pause := func(d time.Duration) { <-time.After(d) } // pacing of the scenario, not synchronisation
	restarts := 0
	for range 5 {
		pause(200 * time.Millisecond)
		victim := names[rng.IntN(nodes)]
		if err := c.Crash(victim); err != nil {
			t.Fatal(err)
		}
		pause(time.Duration(50+rng.IntN(300)) * time.Millisecond)
		if _, err := c.Restart(victim); err != nil {
			t.Fatal(err)
		}
		restarts++
	}
	pause(200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if err := c.Hub.SetFaults(sim.Faults{}); err != nil {
		t.Fatal(err)
	}

	var last error
	err = actortest.WaitFor(30*time.Second, func() bool {
		last = nil
		for _, n := range c.Nodes() {
			st, err := actors.Call(context.Background(), n, commit.Name, commit.StatsRequest{})
			if err == nil && st.Coordinating+st.Preparing+st.InDoubt > 0 {
				err = fmt.Errorf("%s: coordinating %d, preparing %d, in doubt %d", n.Name(), st.Coordinating, st.Preparing, st.InDoubt)
			}
			if err == nil {
				var p []string
				if p, err = b.Pending(n.Name()); err == nil && len(p) > 0 {
					err = fmt.Errorf("%s: ledger holds %v prepared", n.Name(), p)
				}
			}
			if err != nil {
				last = err
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("the cluster did not settle: %v (last: %v)", err, last)
	}

	total, err := b.Total()
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(nodes * accounts * opening); total != want {
		t.Errorf("total %d, want %d", total, want)
	}
	journals := map[actors.NodeName]map[string]bool{}
	for _, n := range names {
		if journals[n], err = b.Journal(n); err != nil {
			t.Fatal(err)
		}
		bal, err := b.Balances(n)
		if err != nil {
			t.Fatal(err)
		}
		for a, v := range bal {
			if v < 0 {
				t.Errorf("%s/%s has %d", n, a, v)
			}
		}
	}
	var committed, aborted, unknown int
	for _, s := range log {
		if s.id == "" {
			unknown++
			continue
		}
		var at []actors.NodeName
		for _, p := range s.participants {
			if journals[p][s.id] {
				at = append(at, p)
			}
		}
		if len(at) != 0 && len(at) != len(s.participants) {
			t.Errorf("%s committed at %v of %v", s.id, at, s.participants)
		}
		if s.known && s.committed != (len(at) > 0) {
			t.Errorf("%s: the client was told committed=%v; committed at %v of %v", s.id, s.committed, at, s.participants)
		}
		switch {
		case !s.known:
			unknown++
		case s.committed:
			committed++
		default:
			aborted++
		}
	}
	t.Logf("%d transfers: %d committed, %d aborted, %d with an outcome unknown to the client; %d restarts", len(log), committed, aborted, unknown, restarts)
	if committed == 0 {
		t.Error("no transfer committed")
	}
}

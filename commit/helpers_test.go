package commit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/commit"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/examples/bank"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/transport/sim"
)

// opening is every account's opening balance in the tests.
const opening = 1000

// hookFn is a fault-injection hook (commit.WithHook).
type hookFn func(s commit.Step, node actors.NodeName, tx string) bool

// env is a cluster whose nodes run the commit protocol over bank ledgers
// (accounts "a" and "b" on every node), and in Consensus mode a raft group
// on every node.
type env struct {
	t    testing.TB
	c    *cluster.Cluster
	bank *bank.Bank
	mode commit.Mode
	dir  string
	hook atomic.Pointer[hookFn]
}

type settings struct {
	sync bool // fsync the commit logs, the ledgers and the raft logs
	cfg  commit.Config
	sim  sim.Config
	wrap func(node actors.NodeName, r commit.Resource) commit.Resource
}

type envOption func(*settings)

func withSync() envOption { return func(s *settings) { s.sync, s.cfg.NoSync = true, false } }

func withFaults(f sim.Faults) envOption { return func(s *settings) { s.sim.Faults = f } }

func withConfig(f func(*commit.Config)) envOption { return func(s *settings) { f(&s.cfg) } }

// withResource wraps every node's ledger.
func withResource(wrap func(node actors.NodeName, r commit.Resource) commit.Resource) envOption {
	return func(s *settings) { s.wrap = wrap }
}

// testConfig is fast: a vote timeout of 300ms, retransmissions from 10ms.
func testConfig(dir string, mode commit.Mode) commit.Config {
	cfg := commit.DefaultConfig()
	cfg.DataDir, cfg.Mode = dir, mode
	cfg.VoteTimeout = 300 * time.Millisecond
	cfg.PrepareTimeout = 150 * time.Millisecond
	cfg.RetryInterval = 10 * time.Millisecond
	cfg.MaxRetryInterval = 100 * time.Millisecond
	cfg.AbandonAfter = 500 * time.Millisecond
	cfg.NoSync = true // a Crash here closes the files cleanly; fsync changes nothing but time
	return cfg
}

func newEnv(t testing.TB, n int, mode commit.Mode, seed uint64, opts ...envOption) *env {
	t.Helper()
	st := settings{cfg: testConfig(t.TempDir(), mode), sim: sim.Config{Seed: seed}}
	for _, o := range opts {
		o(&st)
	}
	cfg := st.cfg
	c := clustertest.NewCluster(t, n, cluster.Sim(st.sim), cluster.Seed(seed), consensustest.Logger())
	accounts := map[actors.NodeName]map[string]int64{}
	for _, name := range c.Names() {
		accounts[name] = map[string]int64{"a": opening, "b": opening}
	}
	b, err := bank.New(bank.Config{DataDir: cfg.DataDir, Accounts: accounts, NoSync: !st.sync})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, c: c, bank: b, mode: mode, dir: cfg.DataDir}
	if mode == commit.Consensus {
		consensustest.StartOn(t, c, consensustest.Options{Machines: []consensus.Machine{kv.DefaultMachine()},
			Config: func(rc *consensus.Config) {
				rc.DataDir, rc.NoSync, rc.RequestTimeout = cfg.DataDir, !st.sync, time.Second
			}})
		e.waitConsensus()
	}
	cfg.Resource = b.Resource
	if st.wrap != nil {
		cfg.Resource = func(node actors.NodeName) (commit.Resource, error) {
			r, err := b.Resource(node)
			if err != nil {
				return nil, err
			}
			return st.wrap(node, r), nil
		}
	}
	cfg = commit.WithHook(cfg, func(s commit.Step, node actors.NodeName, tx string) bool {
		if h := e.hook.Load(); h != nil {
			return (*h)(s, node, tx)
		}
		return false
	})
	cf, err := commit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(cf); err != nil {
		t.Fatal(err)
	}
	return e
}

// waitConsensus waits until the raft group takes a write.
func (e *env) waitConsensus() {
	e.t.Helper()
	actortest.Eventually(e.t, 10*time.Second, "the raft group takes a write", func() bool {
		for _, n := range e.c.Nodes() {
			kc, err := kv.NewClient(n)
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			_, err = kc.Put(ctx, "warm-up", []byte("x"))
			cancel()
			if err == nil {
				return true
			}
		}
		return false
	})
}

func (e *env) setHook(h hookFn) {
	if h == nil {
		e.hook.Store(nil)
		return
	}
	e.hook.Store(&h)
}

func (e *env) node(name actors.NodeName) *actors.Node {
	e.t.Helper()
	n := e.c.Node(name)
	if n == nil {
		e.t.Fatalf("node %s is not running", name)
	}
	return n
}

func (e *env) do(coordinator actors.NodeName, tx commit.Transaction) (commit.Outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return commit.Do(ctx, e.node(coordinator), tx)
}

func (e *env) transfer(from, to bank.Account, amount int64) commit.Transaction {
	e.t.Helper()
	tx, err := bank.Transfer(from, to, amount)
	if err != nil {
		e.t.Fatal(err)
	}
	return tx
}

func acct(node actors.NodeName, name string) bank.Account {
	return bank.Account{Node: node, Name: name}
}

// quiet reports whether every running node has nothing under way: no
// transaction to coordinate, no part preparing or in doubt, nothing
// pending in its ledger.
func (e *env) quiet() error {
	for _, n := range e.c.Nodes() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := actors.Call(ctx, n, commit.Name, commit.StatsRequest{})
		cancel()
		if err != nil {
			return err
		}
		if st.Coordinating+st.Preparing+st.InDoubt > 0 {
			return fmt.Errorf("%s: coordinating %d, preparing %d, in doubt %d", n.Name(), st.Coordinating, st.Preparing, st.InDoubt)
		}
		pending, err := e.bank.Pending(n.Name())
		if err != nil {
			return err
		}
		if len(pending) > 0 {
			return fmt.Errorf("%s: ledger holds %v prepared", n.Name(), pending)
		}
	}
	return nil
}

func (e *env) waitQuiet(timeout time.Duration) {
	e.t.Helper()
	var last error
	err := actortest.WaitFor(timeout, func() bool { last = e.quiet(); return last == nil })
	if err != nil {
		e.t.Fatalf("the cluster did not settle: %v (last: %v)", err, last)
	}
}

// outcome is how one transaction ended at its participants' ledgers.
type outcome struct {
	committed, aborted, absent []actors.NodeName
}

func (o outcome) String() string {
	return fmt.Sprintf("committed at %v, aborted at %v, unknown at %v", o.committed, o.aborted, o.absent)
}

// ledgers reads the journals of the participants.
func (e *env) ledgers(tx string, participants []actors.NodeName) outcome {
	e.t.Helper()
	var o outcome
	for _, n := range participants {
		j, err := e.bank.Journal(n)
		if err != nil {
			e.t.Fatal(err)
		}
		switch c, ok := j[tx]; {
		case !ok:
			o.absent = append(o.absent, n)
		case c:
			o.committed = append(o.committed, n)
		default:
			o.aborted = append(o.aborted, n)
		}
	}
	return o
}

// atomic checks all-or-nothing: committed at every participant, or at none.
func (o outcome) atomic(participants []actors.NodeName) bool {
	return len(o.committed) == 0 || len(o.committed) == len(participants)
}

func (e *env) checkTotal() {
	e.t.Helper()
	total, err := e.bank.Total()
	if err != nil {
		e.t.Fatal(err)
	}
	if want := int64(opening * 2 * len(e.c.Names())); total != want {
		e.t.Fatalf("the bank's total is %d, want %d", total, want)
	}
}

func participantsOf(tx commit.Transaction) []actors.NodeName {
	var out []actors.NodeName
	for _, p := range tx.Parts {
		out = append(out, p.Node)
	}
	slices.Sort(out)
	return out
}

// keyGone reports whether a transaction's decision key is gone from the
// consensus group.
func (e *env) keyGone(tx string) error {
	for _, n := range e.c.Nodes() {
		kc, err := kv.NewClient(n)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		v, found, err := kc.Get(ctx, commit.DecisionKey(tx))
		cancel()
		if err != nil {
			continue
		}
		if found {
			return fmt.Errorf("%s is still %q", commit.DecisionKey(tx), v)
		}
		return nil
	}
	return errors.New("no node answered a read")
}

func waitFor(timeout time.Duration, cond func() bool) error { return actortest.WaitFor(timeout, cond) }

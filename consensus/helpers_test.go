package consensus_test

import (
	"context"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/mutex"
	"github.com/troupe-dev/troupe/transport/sim"
)

// group is a raft group hosting the key-value store on a sim cluster
// (consensustest.Start), with its data dirs in a test temp dir.
type group struct {
	*consensustest.Group
	t   testing.TB
	c   *cluster.Cluster
	cfg consensus.Config
}

// testConfig is consensustest.Config hosting the key-value store and the
// lease locks side by side: 10ms ticks, elections after 100–200ms.
func testConfig(dir string, peers []actors.NodeName) consensus.Config {
	return consensustest.Config(dir, peers, kv.DefaultMachine(), mutex.LockMachine())
}

// newGroup starts n nodes hosting the key-value store (with kcfg's limits
// when given) and the lease locks.
func newGroup(t testing.TB, n int, seed uint64, faults sim.Faults, tweak func(*consensus.Config), kcfg ...kv.Config) *group {
	t.Helper()
	m := kv.DefaultMachine()
	if len(kcfg) > 0 {
		var err error
		if m, err = kv.Machine(kcfg[0]); err != nil {
			t.Fatal(err)
		}
	}
	g := consensustest.Start(t, consensustest.Options{Nodes: n, Seed: seed, Faults: faults, Config: tweak,
		Machines: []consensus.Machine{m, mutex.LockMachine()}})
	return &group{Group: g, t: t, c: g.Cluster, cfg: g.Config}
}

func (g *group) kv(name actors.NodeName) *kv.Client {
	g.t.Helper()
	c, err := kv.NewClient(g.Node(name))
	if err != nil {
		g.t.Fatal(err)
	}
	return c
}

func (g *group) status(name actors.NodeName) (consensus.Status, error) { return g.Status(name) }

// leader waits until every running node names the same leader, and
// returns it.
func (g *group) leader(timeout time.Duration) actors.NodeName {
	g.t.Helper()
	return g.Leader(timeout)
}

// testLogger is consensustest.Logger.
func testLogger() cluster.Option { return consensustest.Logger() }

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

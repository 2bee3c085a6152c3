package kv_test

import (
	"context"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/transport/sim"
)

// group is a raft group hosting the key-value store (consensustest).
type group struct {
	*consensustest.Group
	t testing.TB
}

// newGroup starts n nodes hosting the store with kcfg's limits (the
// defaults when none is given).
func newGroup(t testing.TB, n int, seed uint64, faults sim.Faults, tweak func(*consensus.Config), kcfg ...kv.Config) *group {
	t.Helper()
	m := kv.DefaultMachine()
	if len(kcfg) > 0 {
		var err error
		if m, err = kv.Machine(kcfg[0]); err != nil {
			t.Fatal(err)
		}
	}
	g := consensustest.Start(t, consensustest.Options{Nodes: n, Seed: seed, Faults: faults, Config: tweak, Machines: []consensus.Machine{m}})
	return &group{Group: g, t: t}
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

func (g *group) leader(d time.Duration) actors.NodeName { g.t.Helper(); return g.Leader(d) }

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

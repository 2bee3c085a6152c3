package consensus_test

import (
	"os"
	"slices"

	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/transport/sim"
)

// group is a raft group on a sim cluster, with its data dirs in a test
// temp dir.
type group struct {
	t   testing.TB
	c   *cluster.Cluster
	cfg consensus.Config
}

// testConfig is fast: 10ms ticks, elections after 100–200ms.
func testConfig(dir string, peers []actors.NodeName) consensus.Config {
	cfg := consensus.DefaultConfig()
	cfg.DataDir = dir
	cfg.Peers = peers
	cfg.TickInterval = 10 * time.Millisecond
	cfg.ElectionTicks = 10
	cfg.HeartbeatTicks = 2
	cfg.NoSync = true // a Crash here closes the file cleanly; fsync changes nothing but time
	cfg.RequestTimeout = 2 * time.Second
	return cfg
}

func newGroup(t testing.TB, n int, seed uint64, faults sim.Faults, tweak func(*consensus.Config)) *group {
	t.Helper()
	c := clustertest.NewCluster(t, n, cluster.Sim(sim.Config{Seed: seed, Faults: faults}), cluster.Seed(seed), testLogger())
	cfg := testConfig(t.TempDir(), c.Names())
	if tweak != nil {
		tweak(&cfg)
	}
	rf, err := consensus.New(cfg)
	if err != nil {
		t.Fatalf("starting raft: %v", err)
	}
	if err := c.Start(rf); err != nil {
		t.Fatalf("starting raft: %v", err)
	}
	return &group{t: t, c: c, cfg: cfg}
}

func (g *group) kv(name actors.NodeName) *consensus.KV {
	g.t.Helper()
	n := g.c.Node(name)
	if n == nil {
		g.t.Fatalf("node %s is not running", name)
	}
	kv, err := consensus.NewKV(n)
	if err != nil {
		g.t.Fatal(err)
	}
	return kv
}

func (g *group) status(name actors.NodeName) (consensus.Status, error) {
	n := g.c.Node(name)
	if n == nil {
		return consensus.Status{}, context.Canceled
	}
	kv, err := consensus.NewKV(n)
	if err != nil {
		return consensus.Status{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return kv.Status(ctx)
}

// leader waits until every running node names the same leader, and
// returns it.
func (g *group) leader(timeout time.Duration) actors.NodeName {
	g.t.Helper()
	var lead actors.NodeName
	actortest.Eventually(g.t, timeout, "one leader known to every running node", func() bool {
		lead = ""
		for _, n := range g.c.Nodes() {
			st, err := g.status(n.Name())
			if err == nil && !slices.Contains(st.Voters, n.Name()) && !slices.Contains(st.Learners, n.Name()) {
				continue // not a member (yet)
			}
			if err != nil || st.Leader == "" || (lead != "" && st.Leader != lead) {
				return false
			}
			lead = st.Leader
		}
		st, err := g.status(lead)
		return err == nil && st.State == "StateLeader"
	})
	return lead
}

// testLogger logs to stderr when TROUPE_TEST_LOG is set (debug level with
// TROUPE_TEST_LOG=debug).
func testLogger() cluster.Option {
	lv := os.Getenv("TROUPE_TEST_LOG")
	if lv == "" {
		return cluster.Logger(zerolog.Nop())
	}
	level, err := zerolog.ParseLevel(lv)
	if err != nil {
		level = zerolog.InfoLevel
	}
	return cluster.Logger(zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"}).Level(level).With().Timestamp().Logger())
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

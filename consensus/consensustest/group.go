package consensustest

import (
	"context"
	"os"
	"slices"
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

// Options sets up a raft group for a test ([Start], [StartOn]). The zero
// value is a 3-node group on the simulated network, seed 1, no faults,
// hosting no machine.
type Options struct {
	Nodes    int                 // nodes of the group (Start only); 0 means 3
	Machines []consensus.Machine // the state machines every node hosts
	// Seed seeds the simulated network and the cluster (0 means 1).
	Seed   uint64
	Faults sim.Faults // of the simulated network
	// Loopback runs the nodes on loopback (protoactor remote, gRPC)
	// instead of the simulated network.
	Loopback bool
	// Cluster are further options of the cluster (Start only).
	Cluster []cluster.Option
	// Config changes the raft configuration after [Config] made it.
	Config func(*consensus.Config)
	// Factory makes the protocol of the configuration (nil:
	// consensus.New; a test that restarts the protocol passes its own).
	Factory func(consensus.Config) (actors.Factory, error)
}

// Group is a running raft group of a test: its cluster, the configuration
// its nodes started with (DataDir is a t.TempDir shared by the nodes, each
// in DataDir/<node>/). Everything stops when the test ends.
type Group struct {
	T       testing.TB
	Cluster *cluster.Cluster
	Config  consensus.Config
}

// Config is a raft configuration for tests: 10ms ticks, elections after
// 100–200ms, a 2s request timeout, no fsync (a crash in a test closes the
// files cleanly; fsync changes nothing but time), its log in dir.
func Config(dir string, peers []actors.NodeName, machines ...consensus.Machine) consensus.Config {
	cfg := consensus.DefaultConfig()
	cfg.DataDir, cfg.Peers, cfg.Machines = dir, peers, machines
	cfg.TickInterval = 10 * time.Millisecond
	cfg.ElectionTicks, cfg.HeartbeatTicks = 10, 2
	cfg.NoSync = true
	cfg.RequestTimeout = 2 * time.Second
	return cfg
}

// Start starts an o.Nodes-node cluster and the raft group on it, and
// stops both when the test ends.
func Start(t testing.TB, o Options) *Group {
	t.Helper()
	n := o.Nodes
	if n == 0 {
		n = 3
	}
	seed := o.Seed
	if seed == 0 {
		seed = 1
	}
	net := cluster.Sim(sim.Config{Seed: seed, Faults: o.Faults})
	if o.Loopback {
		net = cluster.Remote()
	}
	opts := append([]cluster.Option{net, cluster.Seed(seed), Logger()}, o.Cluster...)
	return StartOn(t, clustertest.NewCluster(t, n, opts...), o)
}

// StartOn starts the raft group on every node of c (one the test built
// with other protocols), with its data in a t.TempDir.
func StartOn(t testing.TB, c *cluster.Cluster, o Options) *Group {
	t.Helper()
	dir := t.TempDir()
	// Cleanups run last-registered first: stop the nodes before the
	// data dir is removed under them (a write between the two failed
	// the removal, "directory not empty"). Stopping twice is harmless.
	t.Cleanup(func() { _ = c.Stop() })
	cfg := Config(dir, c.Names(), o.Machines...)
	if o.Config != nil {
		o.Config(&cfg)
	}
	newf := o.Factory
	if newf == nil {
		newf = consensus.New
	}
	f, err := newf(cfg)
	if err != nil {
		t.Fatalf("consensustest: the raft configuration: %v", err)
	}
	if err := c.Start(f); err != nil {
		t.Fatalf("consensustest: starting the raft protocol: %v", err)
	}
	return &Group{T: t, Cluster: c, Config: cfg}
}

// Node is the running node name; the test fails if it is not running.
func (g *Group) Node(name actors.NodeName) *actors.Node {
	g.T.Helper()
	n := g.Cluster.Node(name)
	if n == nil {
		g.T.Fatalf("consensustest: node %s is not running", name)
	}
	return n
}

// Client is a client of name's raft protocol (status, admin).
func (g *Group) Client(name actors.NodeName) *consensus.Client {
	g.T.Helper()
	c, err := consensus.NewClient(g.Node(name))
	if err != nil {
		g.T.Fatal(err)
	}
	return c
}

// Status is name's view of the group (an error if it is not running or
// does not answer within a second).
func (g *Group) Status(name actors.NodeName) (consensus.Status, error) {
	n := g.Cluster.Node(name)
	if n == nil {
		return consensus.Status{}, context.Canceled
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return actors.Call(ctx, n, consensus.Name, consensus.StatusRequest{})
}

// Leader waits until every running member names the same leader, and it
// says it leads; it returns its name.
func (g *Group) Leader(timeout time.Duration) actors.NodeName {
	g.T.Helper()
	var lead actors.NodeName
	actortest.Eventually(g.T, timeout, "one leader known to every running node", func() bool {
		lead = ""
		for _, n := range g.Cluster.Nodes() {
			st, err := g.Status(n.Name())
			if err == nil && !slices.Contains(st.Voters, n.Name()) && !slices.Contains(st.Learners, n.Name()) {
				continue // not a member (yet)
			}
			if err != nil || st.Leader == "" || (lead != "" && st.Leader != lead) {
				return false
			}
			lead = st.Leader
		}
		st, err := g.Status(lead)
		return err == nil && st.State == "StateLeader"
	})
	return lead
}

// Crash stops a node as a crash would (cluster.Crash); its data dir stays.
func (g *Group) Crash(name actors.NodeName) {
	g.T.Helper()
	if err := g.Cluster.Crash(name); err != nil {
		g.T.Fatal(err)
	}
}

// Restart brings a crashed node back; its raft protocol restores from its
// data dir.
func (g *Group) Restart(name actors.NodeName) *actors.Node {
	g.T.Helper()
	n, err := g.Cluster.Restart(name)
	if err != nil {
		g.T.Fatal(err)
	}
	return n
}

// Logger is the cluster's logger for tests: silent, unless TROUPE_TEST_LOG
// is set (to a zerolog level: debug, info, ...), then to stderr.
func Logger() cluster.Option {
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

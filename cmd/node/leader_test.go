package main

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/mutex"
	"github.com/troupe-dev/troupe/transport/sim"
)

// node leader on a node without a quorum prints why there is no leader,
// with the count of voters it reaches, instead of an empty name.
func TestLeaderCommandWithoutQuorum(t *testing.T) {
	c := clustertest.NewCluster(t, 3, cluster.Sim(sim.Config{Seed: 4}))
	cfg := consensus.DefaultConfig()
	cfg.Machines = []consensus.Machine{kv.DefaultMachine(), mutex.LockMachine()}
	cfg.DataDir, cfg.Peers, cfg.NoSync = t.TempDir(), c.Names(), true
	cfg.TickInterval = 10 * time.Millisecond
	rf, err := consensus.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(rf); err != nil {
		t.Fatal(err)
	}
	ef, err := election.New(election.Config{Elector: election.RaftElector})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ef); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(c.Node("node-1"), api.Config{}))
	t.Cleanup(srv.Close)
	actortest.Eventually(t, 5*time.Second, "a leader", func() bool {
		out, err := runCLI(t, "leader", "--node", srv.URL)
		return err == nil && strings.HasPrefix(out, "node-")
	})
	c.Hub.Partition([]string{"node-1"})
	var out string
	actortest.Eventually(t, 10*time.Second, "node leader says no quorum", func() bool {
		var err error
		out, err = runCLI(t, "leader", "--node", srv.URL)
		return err == nil && strings.Contains(out, "no_quorum")
	})
	if !strings.HasPrefix(out, "no leader: 1 of 3 voters reachable (node-1) (no_quorum, term ") {
		t.Errorf("node leader without a quorum: %q", out)
	}
}

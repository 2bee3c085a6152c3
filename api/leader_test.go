package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
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

// GET /v1/leader on a minority says there is no leader and why: how many
// voters of how many the node reaches — not an empty name.
func TestLeaderOnAMinority(t *testing.T) {
	c := clustertest.NewCluster(t, 5, cluster.Sim(sim.Config{Seed: 5}), cluster.Seed(5))
	cfg := consensus.DefaultConfig()
	cfg.Machines = []consensus.Machine{kv.DefaultMachine(), mutex.LockMachine()}
	cfg.DataDir, cfg.Peers, cfg.NoSync = t.TempDir(), c.Names(), true
	cfg.TickInterval = 10 * time.Millisecond
	rf, err := consensus.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := election.New(election.Config{Elector: election.RaftElector})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []actors.Factory{rf, ef} {
		if err := c.Start(f); err != nil {
			t.Fatal(err)
		}
	}
	minority := c.Names()[:2]
	srv := httptest.NewServer(api.New(c.Node(minority[0]), api.Config{}))
	t.Cleanup(srv.Close)
	get := func() (l api.Leader) {
		resp, err := http.Get(srv.URL + "/v1/leader")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/leader: %d", resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	actortest.Eventually(t, 10*time.Second, "a leader", func() bool { return get().Leader != "" })
	c.Partition(minority)
	var l api.Leader
	actortest.Eventually(t, 10*time.Second, "the minority says no quorum", func() bool {
		l = get()
		return l.Reason == "no_quorum"
	})
	if l.Leader != "" || l.Reachable != 2 || l.Voters != 5 || len(l.ReachableVoters) != 2 ||
		!strings.HasPrefix(l.Message, "no leader: 2 of 5 voters reachable") {
		t.Errorf("GET /v1/leader on a minority: %+v; want no leader, 2 of 5 voters reachable", l)
	}
}

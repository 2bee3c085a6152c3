package election_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/mutex"
	"github.com/troupe-dev/troupe/transport/sim"
)

func TestRaftElectorFollowsTheRaftLeader(t *testing.T) {
	actortest.Virtual(t, testRaftElectorFollowsTheRaftLeader)
}

func testRaftElectorFollowsTheRaftLeader(t *testing.T) {
	c := clustertest.NewCluster(t, 3, cluster.Sim(sim.Config{Seed: 1}))
	// The elector starts first: it waits for the raft protocol.
	ef, err := election.New(election.Config{Elector: election.RaftElector})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ef); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[actors.NodeName][]election.LeaderChanged{}
	for _, n := range c.Nodes() {
		name := n.Name()
		cancel, err := actors.Observe(n, func(e *election.LeaderChanged) {
			mu.Lock()
			seen[name] = append(seen[name], *e)
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cancel)
	}
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

	agreed := func(not actors.NodeName) election.Leader {
		var l election.Leader
		actortest.Eventually(t, 5*time.Second, "every elector names the raft leader", func() bool {
			l = election.Leader{}
			for _, n := range c.Nodes() {
				got, err := actors.Call(context.Background(), n, election.Name, election.LeaderRequest{})
				if err != nil || got.Name == "" || got.Name == not || (l.Name != "" && got != l) {
					return false
				}
				l = got
				st, err := actors.Call(context.Background(), n, consensus.Name, consensus.StatusRequest{})
				if err != nil || st.Leader != got.Name || st.Term != got.Term {
					return false
				}
			}
			return true
		})
		return l
	}
	first := agreed("")
	if err := c.Crash(first.Name); err != nil {
		t.Fatal(err)
	}
	second := agreed(first.Name)
	if second.Name == first.Name || second.Term <= first.Term {
		t.Fatalf("after the leader crashed: %+v, then %+v; want another leader in a higher term", first, second)
	}
	// The observers hear LeaderChanged in actors of their own, maybe
	// after the electors answered Current: wait for them.
	last := election.LeaderChanged{Leader: second.Name, Term: second.Term}
	heard := func() bool {
		for node, evs := range seen {
			if node != first.Name && (len(evs) == 0 || evs[len(evs)-1] != last) {
				return false
			}
		}
		return true
	}
	if err := actortest.WaitFor(5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return heard() }); err != nil {
		mu.Lock()
		t.Errorf("the observers did not all hear %+v last: %v", last, seen)
		mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	for node, evs := range seen {
		for i := 1; i < len(evs); i++ {
			if evs[i].Term < evs[i-1].Term {
				t.Errorf("%s: term went back: %v", node, evs)
			}
		}
	}
	var e election.Elector = &election.Raft{}
	if e.Algorithm() != "raft" || e.Name() != election.Name {
		t.Errorf("Algorithm %q Name %q", e.Algorithm(), e.Name())
	}
}

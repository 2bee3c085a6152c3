package consensus_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/transport/sim"
)

// lockedBuffer is a log sink for the nodes' goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestForceNewStateInTheProtocol: a library user who sets ForceNewState
// (with Join) gets what node run --force-new-state does, without calling
// PrepareDataDir: the refused state is set aside and the node starts over
// as a new member. A supervised restart of the protocol afterwards keeps
// the new state and sets nothing aside again.
func TestForceNewStateInTheProtocol(t *testing.T) {
	actortest.Virtual(t, testForceNewStateInTheProtocol)
}

func testForceNewStateInTheProtocol(t *testing.T) {
	var logs lockedBuffer
	c := clustertest.NewCluster(t, 3, cluster.Sim(sim.Config{Seed: 7}), cluster.Seed(7), cluster.Logger(zerolog.New(&logs)))
	cfg0 := testConfig(t.TempDir(), c.Names())
	g := &group{Group: &consensustest.Group{T: t, Cluster: c, Config: cfg0}, t: t, c: c, cfg: cfg0}
	for _, name := range c.Names() {
		g.startRaft(name, false)
	}
	lead := g.leader(5 * time.Second)
	victim := actors.NodeName("node-3")
	if lead == victim {
		victim = "node-2"
	}
	before := putAll(t, g, "before", 10)
	if err := g.c.Crash(victim); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(g.cfg.DataDir, string(victim))
	if err := os.Remove(filepath.Join(dir, "raft.db")); err != nil {
		t.Fatal(err)
	}
	if err := g.kv(lead).Admin(ctxT(t, 5*time.Second), consensus.RemoveNode, victim); err != nil {
		t.Fatalf("removing %s: %v", victim, err)
	}
	node, err := g.c.Restart(victim)
	if err != nil {
		t.Fatal(err)
	}
	cfg := g.cfg
	cfg.Join, cfg.ForceNewState = true, true
	if err := node.Start(consensus.NewCrashable(cfg)); err != nil {
		t.Fatalf("starting %s with ForceNewState: %v, want the refused state set aside and a new member", victim, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "raft-set-aside-1", "raft.db.created")); err != nil {
		t.Errorf("the refused state was not set aside: %v", err)
	}
	if err := g.kv(lead).Admin(ctxT(t, 5*time.Second), consensus.AddVoter, victim); err != nil {
		t.Fatalf("adding %s back: %v", victim, err)
	}
	actortest.Eventually(t, 10*time.Second, string(victim)+" catches up", func() bool {
		st, err := g.status(victim)
		return err == nil && st.Keys == len(before) && len(st.Voters) == 3
	})

	// A panic restarts the protocol (supervision).
	if err := node.Tell(consensus.Name, consensus.Crash{}); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 10*time.Second, string(victim)+"'s raft restarted and serving", func() bool {
		if node.Stats().Protocols[consensus.Name].Restarts != 1 {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		kc, err := kv.NewClient(node)
		if err != nil {
			return false
		}
		_, found, err := kc.Get(ctx, "before-000")
		return err == nil && found
	})
	if _, err := os.Stat(filepath.Join(dir, "raft-set-aside-2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a second set-aside after the supervised restart: %v", err)
	}
	if n := strings.Count(logs.String(), "FORCE NEW STATE"); n != 1 {
		t.Errorf("%d FORCE NEW STATE warnings, want 1 (the start; none at the restart)", n)
	}
	if strings.Contains(logs.String(), "the flag does nothing") {
		t.Errorf("the restart warned that ForceNewState does nothing:\n%s", logs.String())
	}
	checkAll(t, g.kv(victim), before)
}

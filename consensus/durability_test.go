package consensus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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

// putAll writes n keys through random nodes, 8 writers at once, and returns
// what was acknowledged (a write that fails is tried again, for 20 s).
func putAll(t *testing.T, g *group, prefix string, n int) map[string]string {
	t.Helper()
	acked := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	nodes := g.c.Names()
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				node := g.c.Node(nodes[i%len(nodes)])
				if node == nil {
					continue
				}
				kc, err := kv.NewClient(node)
				if err != nil {
					continue
				}
				key, val := fmt.Sprintf("%s-%03d", prefix, i), fmt.Sprintf("value-%d", i)
				// A put that fails is put again (the same value: a
				// second apply changes nothing) until it is acknowledged
				// or 20 s pass: on a starved machine one 3 s wait is not
				// enough, and the tests want every write acknowledged.
				for deadline := time.Now().Add(20 * time.Second); ; {
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					_, err = kc.Put(ctx, key, []byte(val))
					cancel()
					if err == nil || time.Now().After(deadline) {
						break
					}
				}
				if err == nil {
					mu.Lock()
					acked[key] = val
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return acked
}

func checkAll(t *testing.T, kc *kv.Client, want map[string]string) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	for k, v := range want {
		got, found, err := kc.Get(ctx, k)
		if err != nil || !found || string(got) != v {
			t.Fatalf("%s on %s: got %q found=%v err=%v, want %q", k, kc.Node().Name(), got, found, err, v)
		}
	}
}

func TestRestartAllKeepsAcknowledgedWrites(t *testing.T) {
	g := newGroup(t, 3, 3, sim.Faults{Loss: 0.02}, func(c *consensus.Config) {
		c.NoSync = false // the real thing: fsync on
		c.SnapshotEntries, c.CatchUpEntries = 50, 10
	})
	g.leader(5 * time.Second)
	acked := putAll(t, g, "a", 200)
	if len(acked) < 190 {
		t.Fatalf("only %d of 200 writes acknowledged on a healthy group", len(acked))
	}
	for _, n := range g.c.Names() {
		if err := g.c.Crash(n); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range g.c.Names() {
		if _, err := g.c.Restart(n); err != nil {
			t.Fatalf("restarting %s from its data dir: %v", n, err)
		}
	}
	g.leader(5 * time.Second)
	for _, n := range g.c.Names() {
		checkAll(t, g.kv(n), acked)
		st, err := g.status(n)
		if err != nil {
			t.Fatal(err)
		}
		if st.Keys != len(acked) {
			t.Errorf("%s holds %d keys, want %d", n, st.Keys, len(acked))
		}
	}
	st, _ := g.status("node-1")
	if st.SnapshotIndex == 0 {
		t.Errorf("no snapshot was taken (SnapshotEntries 50, 200 writes): the restart did not exercise snapshot + log")
	}
}

// startManual starts a group whose raft protocol is started node by node
// (so that a node can be restarted with Join), on nodes named by the
// cluster; peers are the first voters.
func startManual(t *testing.T, n int, peers []actors.NodeName, tweak func(*consensus.Config)) *group {
	t.Helper()
	c := clustertest.NewCluster(t, n, cluster.Sim(sim.Config{Seed: 5}), cluster.Seed(5), testLogger())
	cfg := testConfig(t.TempDir(), peers)
	if tweak != nil {
		tweak(&cfg)
	}
	g := &group{Group: &consensustest.Group{T: t, Cluster: c, Config: cfg}, t: t, c: c, cfg: cfg}
	for _, name := range c.Names() {
		g.startRaft(name, !slices.Contains(peers, name))
	}
	return g
}

func (g *group) startRaft(name actors.NodeName, join bool) {
	g.t.Helper()
	cfg := g.cfg
	cfg.Join = join
	rf, err := consensus.New(cfg)
	if err != nil {
		g.t.Fatalf("starting raft on %s: %v", name, err)
	}
	if err := g.c.Node(name).Start(rf); err != nil {
		g.t.Fatalf("starting raft on %s: %v", name, err)
	}
}

func TestWipedNodeRejoinsBySnapshot(t *testing.T) {
	g := startManual(t, 3, []actors.NodeName{"node-1", "node-2", "node-3"}, func(c *consensus.Config) {
		c.SnapshotEntries, c.CatchUpEntries = 20, 5
	})
	lead := g.leader(5 * time.Second)
	victim := actors.NodeName("node-3")
	if lead == victim {
		victim = "node-2"
	}
	before := putAll(t, g, "before", 30)
	if err := g.c.Crash(victim); err != nil {
		t.Fatal(err)
	}
	// The operator's procedure: remove the member, wipe it, add it back.
	if err := g.kv(lead).Admin(ctxT(t, 5*time.Second), consensus.RemoveNode, victim); err != nil {
		t.Fatalf("removing %s: %v", victim, err)
	}
	if err := os.RemoveAll(filepath.Join(g.cfg.DataDir, string(victim))); err != nil {
		t.Fatal(err)
	}
	after := putAll(t, g, "after", 100) // the leader compacts its log past everything the victim had
	if _, err := g.c.Restart(victim); err != nil {
		t.Fatal(err)
	}
	g.startRaft(victim, true)
	if err := g.kv(lead).Admin(ctxT(t, 5*time.Second), consensus.AddVoter, victim); err != nil {
		t.Fatalf("adding %s back: %v", victim, err)
	}
	leadSt, err := g.status(lead)
	if err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 5*time.Second, string(victim)+" catches up", func() bool {
		st, err := g.status(victim)
		return err == nil && st.Applied >= leadSt.Commit && st.Keys == len(before)+len(after)
	})
	st, _ := g.status(victim)
	if st.SnapshotsReceived == 0 {
		t.Errorf("%s caught up without a snapshot (status %+v): the log was not compacted", victim, st)
	}
	if len(st.Voters) != 3 || !slices.Contains(st.Voters, victim) {
		t.Errorf("voters %v, want 3 with %s", st.Voters, victim)
	}
	checkAll(t, g.kv(victim), before)
	checkAll(t, g.kv(victim), after)
}

func TestCorruptedLogIsRefusedAtStart(t *testing.T) {
	g := newGroup(t, 1, 4, sim.Faults{}, nil)
	g.leader(5 * time.Second)
	ctx := ctxT(t, 5*time.Second)
	marker := []byte("a-value-to-corrupt-on-disk")
	if _, err := g.kv("node-1").Put(ctx, "k", marker); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(g.cfg.DataDir, "node-1")
	if err := g.c.Crash("node-1"); err != nil {
		t.Fatal(err)
	}
	// The value is in a segment of the write-ahead log (wal-*/), the
	// hard state and the snapshot in raft.db.
	db := filepath.Join(dir, "raft.db")
	segment := ""
	files, err := filepath.Glob(filepath.Join(dir, "wal-*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, marker) {
			segment = f
		}
	}
	if segment == "" {
		t.Fatalf("the value is in none of the log segments %v", files)
	}
	goodDB, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	goodSeg, err := os.ReadFile(segment)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(goodSeg)
	flipped[bytes.Index(flipped, marker)+5] ^= 0x20
	for _, c := range []struct {
		name string
		path string
		data []byte
		want string
	}{
		{"flipped byte in an entry", segment, flipped, "checksum"},
		{"torn log tail", segment, goodSeg[:len(goodSeg)-3], "log"},
		{"garbage log segment", segment, bytes.Repeat([]byte{0xAB}, len(goodSeg)), "log"},
		{"garbage raft.db", db, bytes.Repeat([]byte{0xAB}, len(goodDB)), "raft.db"},
		{"truncated raft.db", db, goodDB[:100], "raft.db"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(c.path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := errors.Join(os.WriteFile(db, goodDB, 0o600), os.WriteFile(segment, goodSeg, 0o600)); err != nil {
					t.Fatal(err)
				}
			}()
			_, err := g.c.Restart("node-1")
			if err == nil {
				t.Fatalf("node-1 started from a corrupted log")
			}
			if !errors.Is(err, consensus.ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q; want ErrCorrupt mentioning %q", err, c.want)
			}
			t.Logf("refused: %v", err)
			if err := g.c.Crash("node-1"); err != nil {
				t.Fatal(err)
			}
		})
	}
	// The intact files still start and hold the value.
	if _, err := g.c.Restart("node-1"); err != nil {
		t.Fatalf("restarting from the intact files: %v", err)
	}
	g.leader(5 * time.Second)
	checkAll(t, g.kv("node-1"), map[string]string{"k": string(marker)})
}

func TestRequestsWithoutLeaderFailClearly(t *testing.T) {
	g := newGroup(t, 3, 6, sim.Faults{}, nil)
	g.leader(5 * time.Second)
	survivor := actors.NodeName("node-1")
	for _, n := range []actors.NodeName{"node-2", "node-3"} {
		if err := g.c.Crash(n); err != nil {
			t.Fatal(err)
		}
	}
	// Check-quorum: a leader without a quorum steps down; followers
	// forget it after an election timeout.
	actortest.Eventually(t, 5*time.Second, "the survivor knows no leader", func() bool {
		st, err := g.status(survivor)
		return err == nil && st.Leader == ""
	})
	kc := g.kv(survivor)
	ctx := ctxT(t, 5*time.Second)
	start := time.Now()
	if _, err := kc.Put(ctx, "k", []byte("v")); !errors.Is(err, consensus.ErrNoLeader) {
		t.Errorf("put without a leader: %v, want ErrNoLeader", err)
	}
	if _, _, err := kc.Get(ctx, "k"); !errors.Is(err, consensus.ErrNoLeader) {
		t.Errorf("get without a leader: %v, want ErrNoLeader", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing took %v; it should not wait for a timeout", d)
	}
	var nl *consensus.NotLeaderError
	if err := kc.Admin(ctx, consensus.AddVoter, "node-9"); !errors.As(err, &nl) || !errors.Is(err, consensus.ErrNotLeader) {
		t.Errorf("admin without a leader: %v, want a NotLeaderError", err)
	}
}

func TestMembershipChangesAndLeaderTransfer(t *testing.T) {
	g := startManual(t, 4, []actors.NodeName{"node-1", "node-2", "node-3"}, nil)
	lead := g.leader(5 * time.Second)
	ctx := ctxT(t, 10*time.Second)
	var follower actors.NodeName
	for _, n := range []actors.NodeName{"node-1", "node-2", "node-3"} {
		if n != lead {
			follower = n
			break
		}
	}
	var nl *consensus.NotLeaderError
	if err := g.kv(follower).Admin(ctx, consensus.AddLearner, "node-4"); !errors.As(err, &nl) || nl.Leader != lead {
		t.Fatalf("admin on a follower: %v, want NotLeaderError naming %s", err, lead)
	}
	if err := g.kv(lead).Admin(ctx, consensus.AddLearner, "node-4"); err != nil {
		t.Fatalf("adding a learner: %v", err)
	}
	acked := putAll(t, g, "m", 20)
	actortest.Eventually(t, 5*time.Second, "the learner replicates", func() bool {
		st, err := g.status("node-4")
		return err == nil && st.Keys == len(acked) && slices.Equal(st.Learners, []actors.NodeName{"node-4"})
	})
	if err := g.kv(lead).Admin(ctx, consensus.AddVoter, "node-4"); err != nil {
		t.Fatalf("promoting the learner: %v", err)
	}
	if err := g.kv(lead).Admin(ctx, consensus.TransferLeader, "node-4"); err != nil {
		t.Fatalf("transferring leadership: %v", err)
	}
	if got := g.leader(5 * time.Second); got != "node-4" {
		t.Fatalf("leader %s after the transfer, want node-4", got)
	}
	if err := g.kv("node-4").Admin(ctx, consensus.RemoveNode, lead); err != nil {
		t.Fatalf("removing the old leader: %v", err)
	}
	st, err := g.status("node-4")
	if err != nil {
		t.Fatal(err)
	}
	want := []actors.NodeName{"node-1", "node-2", "node-3", "node-4"}
	want = slices.DeleteFunc(want, func(s actors.NodeName) bool { return s == lead })
	if !slices.Equal(st.Voters, want) || len(st.Learners) != 0 {
		t.Errorf("voters %v learners %v, want voters %v", st.Voters, st.Learners, want)
	}
	checkAll(t, g.kv("node-4"), acked)
	if _, err := g.kv("node-4").Put(ctx, "after-removal", []byte("x")); err != nil {
		t.Errorf("writing with the new configuration: %v", err)
	}
}

// A stopped node whose raft.db was deleted or emptied, or whose log was
// deleted, would start with term 0 and no vote (free to vote twice in a
// term) or without entries it acknowledged: it refuses to start, naming
// what is missing and the way out.
func TestLostRaftStateIsRefusedAtStart(t *testing.T) {
	g := newGroup(t, 1, 4, sim.Faults{}, nil)
	g.leader(5 * time.Second)
	if _, err := g.kv("node-1").Put(ctxT(t, 5*time.Second), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(g.cfg.DataDir, "node-1")
	if err := g.c.Crash("node-1"); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "raft.db")
	logs, err := filepath.Glob(filepath.Join(dir, "wal-*"))
	if err != nil || len(logs) != 1 {
		t.Fatalf("logs %v (%v), want one", logs, err)
	}
	aside := filepath.Join(t.TempDir(), "aside")
	for _, c := range []struct {
		name, path string
		lose       func() error
	}{
		{"raft.db deleted", db, func() error { return os.Rename(db, aside) }},
		{"raft.db truncated to 0 bytes", db, func() error {
			return errors.Join(os.Rename(db, aside), os.WriteFile(db, nil, 0o600))
		}},
		{"the log deleted", filepath.Base(logs[0]), func() error { return os.Rename(logs[0], aside) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.lose(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				target := db
				if c.path != db {
					target = logs[0]
				}
				if err := errors.Join(os.RemoveAll(target), os.Rename(aside, target)); err != nil {
					t.Fatal(err)
				}
			}()
			_, err := g.c.Restart("node-1")
			if err == nil {
				_ = g.c.Crash("node-1")
				t.Fatalf("node-1 started without its raft state")
			}
			if !errors.Is(err, consensus.ErrMissingState) || !strings.Contains(err.Error(), filepath.Base(c.path)) ||
				!strings.Contains(err.Error(), "--force-new-state") {
				t.Fatalf("error %q; want ErrMissingState naming %s and --force-new-state", err, filepath.Base(c.path))
			}
			t.Logf("refused: %v", err)
			if err := g.c.Crash("node-1"); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := g.c.Restart("node-1"); err != nil {
		t.Fatalf("restarting from the intact files: %v", err)
	}
	g.leader(5 * time.Second)
	checkAll(t, g.kv("node-1"), map[string]string{"k": "v"})
}

// The operator's way out of ErrMissingState: remove the node, start it
// over with ForceNewState (its state moved aside), add it back; it
// catches up from the leader and holds every key.
func TestForceNewStateRejoinsAsANewMember(t *testing.T) {
	g := startManual(t, 3, []actors.NodeName{"node-1", "node-2", "node-3"}, nil)
	lead := g.leader(5 * time.Second)
	victim := actors.NodeName("node-3")
	if lead == victim {
		victim = "node-2"
	}
	before := putAll(t, g, "before", 20)
	if err := g.c.Crash(victim); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(g.cfg.DataDir, string(victim))
	if err := os.Remove(filepath.Join(dir, "raft.db")); err != nil {
		t.Fatal(err)
	}
	node, err := g.c.Restart(victim)
	if err != nil {
		t.Fatal(err)
	}
	rf, err := consensus.New(g.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(rf); !errors.Is(err, consensus.ErrMissingState) {
		t.Fatalf("starting %s without raft.db: %v, want ErrMissingState", victim, err)
	}
	if err := g.kv(lead).Admin(ctxT(t, 5*time.Second), consensus.RemoveNode, victim); err != nil {
		t.Fatalf("removing %s: %v", victim, err)
	}
	after := putAll(t, g, "after", 20)
	cfg := g.cfg
	cfg.Join, cfg.ForceNewState = true, true
	var logs bytes.Buffer
	if err := consensus.PrepareDataDir(cfg, victim, zerolog.New(&logs)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "FORCE NEW STATE") {
		t.Errorf("no warning logged: %q", logs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "raft-set-aside-1", "raft.db.created")); err != nil {
		t.Errorf("the refused state was not set aside: %v", err)
	}
	rf, err = consensus.New(cfg)
	if err != nil {
		t.Fatalf("starting %s over: %v", victim, err)
	}
	if err := node.Start(rf); err != nil {
		t.Fatalf("starting %s over: %v", victim, err)
	}
	if err := g.kv(lead).Admin(ctxT(t, 5*time.Second), consensus.AddVoter, victim); err != nil {
		t.Fatalf("adding %s back: %v", victim, err)
	}
	actortest.Eventually(t, 5*time.Second, string(victim)+" catches up", func() bool {
		st, err := g.status(victim)
		return err == nil && st.Keys == len(before)+len(after) && len(st.Voters) == 3
	})
	checkAll(t, g.kv(victim), before)
	checkAll(t, g.kv(victim), after)
}

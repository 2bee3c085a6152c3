package membership_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/membership"
)

// fast are timings for tests on loopback: a probe every 100ms.
var fast = membership.Timing{
	ProbeInterval:    100 * time.Millisecond,
	ProbeTimeout:     50 * time.Millisecond,
	GossipInterval:   30 * time.Millisecond,
	PushPullInterval: time.Second,
	SuspicionMult:    2,
	TCPTimeout:       time.Second,
}

// recorder keeps every event a node saw.
type recorder struct {
	mu     sync.Mutex
	events []membership.Event
}

func (r *recorder) add(ev membership.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

// saw reports whether an event of type E about member `name` arrived.
func saw[E membership.Event](r *recorder, name actors.NodeName) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.events, func(ev membership.Event) bool {
		_, ok := ev.(E)
		return ok && ev.Of().Name == name
	})
}

type testNode struct {
	*membership.Membership
	rec *recorder
}

func start(t *testing.T, cfg membership.Config) (*testNode, error) {
	t.Helper()
	if cfg.Preset == "" {
		cfg.Preset = membership.PresetLocal
	}
	if cfg.Timing == (membership.Timing{}) {
		cfg.Timing = fast
	}
	if cfg.Retry.Timeout == 0 {
		cfg.Retry.Timeout = 10 * time.Second
	}
	m, err := membership.New(cfg)
	if err != nil {
		return nil, err
	}
	n := &testNode{Membership: m, rec: &recorder{}}
	m.Subscribe(n.rec.add)
	if err := m.Join(context.Background()); err != nil {
		_ = m.Shutdown()
		return nil, err
	}
	return n, nil
}

// startCluster starts n nodes, node-2.. joining through node-1.
func startCluster(t *testing.T, n int, tweak func(*membership.Config)) []*testNode {
	t.Helper()
	var nodes []*testNode
	t.Cleanup(func() {
		for _, n := range nodes {
			_ = n.Shutdown()
		}
	})
	for i := range n {
		cfg := membership.Config{Name: actors.NodeName(fmt.Sprintf("node-%d", i+1))}
		if i > 0 {
			cfg.Seeds = []string{nodes[0].GossipAddr()}
		}
		if tweak != nil {
			tweak(&cfg)
		}
		node, err := start(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, node)
	}
	return nodes
}

func names(n int) []actors.NodeName {
	var out []actors.NodeName
	for i := range n {
		out = append(out, actors.NodeName(fmt.Sprintf("node-%d", i+1)))
	}
	slices.Sort(out)
	return out
}

func allSeeAll(t *testing.T, nodes []*testNode, want []actors.NodeName) {
	t.Helper()
	actortest.Eventually(t, 10*time.Second, fmt.Sprintf("every node sees %v", want), func() bool {
		for _, n := range nodes {
			if !slices.Equal(n.View().LiveNames(), want) {
				return false
			}
		}
		return true
	})
}

func TestFiveNodesJoinAndSeeEachOther(t *testing.T) {
	nodes := startCluster(t, 5, nil)
	allSeeAll(t, nodes, names(5))
	for _, n := range nodes {
		for _, other := range nodes {
			if other == n {
				continue
			}
			if !saw[*membership.MemberJoined](n.rec, other.Name()) {
				t.Errorf("%s saw no MemberJoined for %s", n.Name(), other.Name())
			}
		}
		// A member of a loaded host may be suspected for a moment (the
		// race detector on 2 shared cores): alive again, it counts.
		var s membership.Stats
		if err := actortest.WaitFor(10*time.Second, func() bool { s = n.Stats(); return s.Alive == 5 }); err != nil {
			t.Errorf("%s stats %+v: want 5 alive", n.Name(), s)
		}
		actortest.Eventually(t, 5*time.Second, string(n.Name())+" counts probes and gossip", func() bool {
			s := n.Stats()
			return s.Probes > 0 && s.PacketsSent > 0 && s.PacketsReceived > 0 && s.BytesSent > 0 && s.BytesReceived > 0
		})
	}
}

func TestStoppedNodeIsReportedFailed(t *testing.T) {
	nodes := startCluster(t, 5, nil)
	allSeeAll(t, nodes, names(5))
	victim := nodes[4]
	if err := victim.Shutdown(); err != nil {
		t.Fatal(err)
	}
	rest := nodes[:4]
	// The view, not only the events: on a loaded machine node-5 may have
	// been taken for failed, and come back, before the shutdown, so a
	// MemberFailed may be older than it.
	actortest.Eventually(t, 10*time.Second, "every node reports node-5 failed and holds it failed", func() bool {
		for _, n := range rest {
			m, _ := n.View().Get("node-5")
			if !saw[*membership.MemberFailed](n.rec, "node-5") || m.State != membership.Failed {
				return false
			}
		}
		return true
	})
	for _, n := range rest {
		if saw[*membership.MemberLeft](n.rec, "node-5") {
			t.Errorf("%s reported a crashed node as left", n.Name())
		}
	}
}

func TestGracefulLeaveIsReportedLeft(t *testing.T) {
	nodes := startCluster(t, 5, nil)
	allSeeAll(t, nodes, names(5))
	if err := nodes[2].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	rest := []*testNode{nodes[0], nodes[1], nodes[3], nodes[4]}
	err := actortest.WaitFor(10*time.Second, func() bool {
		for _, n := range rest {
			if !saw[*membership.MemberLeft](n.rec, "node-3") {
				return false
			}
		}
		return true
	})
	if err != nil {
		for _, n := range rest {
			n.rec.mu.Lock()
			t.Logf("%s saw %v", n.Name(), n.rec.events)
			n.rec.mu.Unlock()
		}
		t.Fatal("not every node reports node-3 left")
	}
	for _, n := range rest {
		if saw[*membership.MemberFailed](n.rec, "node-3") {
			n.rec.mu.Lock()
			t.Errorf("%s reported a node that left as failed: %v", n.Name(), n.rec.events)
			n.rec.mu.Unlock()
		}
	}
}

func TestRestartedNodeRejoinsUnderItsName(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	allSeeAll(t, nodes, names(3))
	old := nodes[2]
	oldGen := old.View().Self.Generation
	_ = old.Shutdown()
	actortest.Eventually(t, 10*time.Second, "node-3 declared failed", func() bool {
		return saw[*membership.MemberFailed](nodes[0].rec, "node-3") && saw[*membership.MemberFailed](nodes[1].rec, "node-3")
	})
	back, err := start(t, membership.Config{Name: "node-3", Seeds: []string{nodes[0].GossipAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	nodes[2] = back
	allSeeAll(t, nodes, names(3))
	for _, n := range nodes[:2] {
		m, _ := n.View().Get("node-3")
		if m.Generation == oldGen || m.Gossip != back.GossipAddr() {
			t.Errorf("%s sees node-3 as %+v; want the new generation at %s", n.Name(), m, back.GossipAddr())
		}
	}
}

func TestNameTakenByLiveMember(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	allSeeAll(t, nodes, names(2))
	_, err := start(t, membership.Config{Name: "node-2", Seeds: []string{nodes[0].GossipAddr()}})
	if !errors.Is(err, membership.ErrNameTaken) {
		t.Fatalf("joining as a live member's name: err = %v, want ErrNameTaken", err)
	}
	if !strings.Contains(err.Error(), `"node-2"`) {
		t.Errorf("error does not name the node: %v", err)
	}
	allSeeAll(t, nodes, names(2))
}

// syncBuffer is a log sink safe for memberlist's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestDifferentKeysDoNotMerge(t *testing.T) {
	keyA := bytes.Repeat([]byte{1}, 32)
	keyB := bytes.Repeat([]byte{2}, 32)
	a, err := start(t, membership.Config{Name: "node-a", Keys: [][]byte{keyA}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	var logs syncBuffer
	_, err = start(t, membership.Config{Name: "node-b", Keys: [][]byte{keyB}, Seeds: []string{a.GossipAddr()},
		Logger: zerolog.New(&logs)})
	if !errors.Is(err, membership.ErrKeyMismatch) {
		t.Fatalf("join with another key: err = %v, want ErrKeyMismatch", err)
	}
	if !strings.Contains(logs.String(), "gossip keys differ") {
		t.Errorf("the log does not say why the join failed:\n%s", logs.String())
	}
	if got := a.View().LiveNames(); !slices.Equal(got, []actors.NodeName{"node-a"}) {
		t.Errorf("node-a's view is %v after a join with another key", got)
	}
	// No key at all against an encrypted cluster fails the same way.
	_, err = start(t, membership.Config{Name: "node-c", Seeds: []string{a.GossipAddr()}})
	if !errors.Is(err, membership.ErrKeyMismatch) {
		t.Fatalf("join without a key: err = %v, want ErrKeyMismatch", err)
	}
}

func TestKeyRotationWithoutDowntime(t *testing.T) {
	oldKey := bytes.Repeat([]byte{7}, 16)
	newKey := bytes.Repeat([]byte{9}, 16)
	nodes := startCluster(t, 3, func(c *membership.Config) { c.Keys = [][]byte{oldKey} })
	allSeeAll(t, nodes, names(3))
	for _, step := range []func(*testNode) error{
		func(n *testNode) error { return n.InstallKey(newKey) },
		func(n *testNode) error { return n.UseKey(newKey) },
		func(n *testNode) error { return n.RemoveKey(oldKey) },
	} {
		for _, n := range nodes {
			if err := step(n); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, n := range nodes {
		if keys := n.Keys(); len(keys) != 1 || !bytes.Equal(keys[0], newKey) {
			t.Fatalf("%s keys after rotation: %x", n.Name(), keys)
		}
	}
	// The cluster still gossips: a new node with only the new key joins and
	// is seen by all.
	late, err := start(t, membership.Config{Name: "node-4", Keys: [][]byte{newKey}, Seeds: []string{nodes[1].GossipAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = late.Shutdown() })
	nodes = append(nodes, late)
	allSeeAll(t, nodes, names(4))
	for _, n := range nodes[:3] {
		if saw[*membership.MemberFailed](n.rec, "node-1") || saw[*membership.MemberFailed](n.rec, "node-2") || saw[*membership.MemberFailed](n.rec, "node-3") {
			t.Errorf("%s saw a failure during key rotation", n.Name())
		}
	}
}

func TestBadConfigIsRefusedAtStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  membership.Config
		want string
	}{
		{"bad key length", membership.Config{Name: "n", Keys: [][]byte{[]byte("short")}}, "Keys[0] is 5 bytes; a gossip key is 16, 24 or 32 bytes"},
		{"malformed seed", membership.Config{Name: "n", Seeds: []string{"localhost"}}, `Seeds[0] "localhost" is not host:port`},
		{"seed without port", membership.Config{Name: "n", Seeds: []string{"10.0.0.1:x"}}, `valid ports are 1-65535`},
		{"malformed bind", membership.Config{Name: "n", Bind: "127.0.0.1"}, `Bind "127.0.0.1" is not host:port`},
		{"unknown preset", membership.Config{Name: "n", Preset: "fast"}, `Preset "fast" is unknown; valid presets are "lan", "wan" and "local"`},
		{"empty name", membership.Config{}, "Name"},
		{"negative timing", membership.Config{Name: "n", Timing: membership.Timing{ProbeInterval: -1}}, "Timing.ProbeInterval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := membership.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestUnreachableSeed(t *testing.T) {
	_, err := start(t, membership.Config{Name: "lonely", Seeds: []string{"127.0.0.1:1"},
		Retry: membership.JoinRetry{Backoff: 10 * time.Millisecond, Timeout: 300 * time.Millisecond}})
	if !errors.Is(err, membership.ErrNoSeed) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("err = %v, want ErrNoSeed naming the seed", err)
	}
}

func TestShutdownLeavesNoGoroutines(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	allSeeAll(t, nodes, names(3))
	for _, n := range nodes {
		_ = n.Shutdown()
	}
	if err := actortest.NoGoroutinesOf("github.com/troupe-dev/troupe/membership"); err != nil {
		t.Fatal(err)
	}
	if err := actortest.NoGoroutinesOf("github.com/hashicorp/memberlist"); err != nil {
		t.Fatal(err)
	}
}

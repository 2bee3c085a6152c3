package membership_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/membership"
)

func TestMemoryRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "members.json")
	if rs, err := membership.LoadMemory(path, "node-1"); err != nil || rs != nil {
		t.Fatalf("a missing file: %v %v, want no memory and no error", rs, err)
	}
	want := []membership.Remembered{
		{Name: "node-2", Gossip: "127.0.0.1:7012", Address: "127.0.0.1:7011"},
		{Name: "node-3", Gossip: "[::1]:7022"}, // no remote address (sim)
	}
	if err := membership.SaveMemory(path, "node-1", want); err != nil {
		t.Fatal(err)
	}
	got, err := membership.LoadMemory(path, "node-1")
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("round trip: %v %v, want %v", got, err, want)
	}
	// Written again (a rename over the old file), and no temporary left.
	if err := membership.SaveMemory(path, "node-1", want[:1]); err != nil {
		t.Fatal(err)
	}
	if got, err := membership.LoadMemory(path, "node-1"); err != nil || !slices.Equal(got, want[:1]) {
		t.Fatalf("after a rewrite: %v %v", got, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the dir holds %d files, want only members.json: %v", len(entries), entries)
	}
}

func TestMemoryRefusesBadFiles(t *testing.T) {
	member := func(name, gossip, addr string) string {
		return fmt.Sprintf(`{"name":%q,"gossip":%q,"address":%q}`, name, gossip, addr)
	}
	file := func(node string, members ...string) string {
		return fmt.Sprintf(`{"version":1,"node":%q,"members":[%s]}`, node, strings.Join(members, ","))
	}
	ok := member("node-2", "127.0.0.1:7012", "127.0.0.1:7011")
	var many []string
	for i := range membership.MemoryMaxMembers + 1 {
		many = append(many, member(fmt.Sprintf("n%d", i), "127.0.0.1:1", ""))
	}
	for _, c := range []struct {
		name, data, want string
	}{
		{"garbage", "\x00\x01garbage", "is not a members file"},
		{"empty", "", "is not a members file"},
		{"not an object", `[1,2]`, "is not a members file"},
		{"unknown field", `{"version":1,"node":"node-1","members":[],"extra":1}`, `unknown field "extra"`},
		{"trailing data", file("node-1", ok) + "{}", "has data after its JSON object"},
		{"oversize", strings.Repeat(" ", membership.MemoryMaxBytes+1), "is 1048577 bytes; a members file is at most 1048576"},
		{"newer version", `{"version":2,"node":"node-1","members":[]}`, "has version 2; this node reads version 1"},
		{"another node's", file("node-7", ok), `was written by node "node-7"; this node is "node-1"`},
		{"too many", file("node-1", many...), "names 1025 members; at most 1024 are allowed"},
		{"invalid name", file("node-1", ok, member("node 3; rm -rf", "127.0.0.1:1", "")), `members[1]: member name "node 3; rm -rf" has ' ' at byte 4`},
		{"empty name", file("node-1", member("", "127.0.0.1:1", "")), "members[0]: member name is empty"},
		{"self", file("node-1", member("node-1", "127.0.0.1:1", "")), "members[0] is this node (node-1)"},
		{"twice", file("node-1", ok, ok), "members[1]: node-2 is listed twice"},
		{"bad gossip", file("node-1", member("node-2", "nowhere", "")), `members[0] (node-2): gossip "nowhere" is not host:port`},
		{"port 0", file("node-1", member("node-2", "127.0.0.1:0", "")), `gossip "127.0.0.1:0" has port "0"; valid ports are 1-65535`},
		{"bad address", file("node-1", member("node-2", "127.0.0.1:1", "127.0.0.1:99999")), `members[0] (node-2): address "127.0.0.1:99999" has port "99999"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "members.json")
			if err := os.WriteFile(path, []byte(c.data), 0o600); err != nil {
				t.Fatal(err)
			}
			rs, err := membership.LoadMemory(path, "node-1")
			if !errors.Is(err, membership.ErrMemory) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want ErrMemory naming %s and containing %q", err, path, c.want)
			}
			if rs != nil {
				t.Errorf("a refused file gave members %v", rs)
			}
		})
	}
	// Not a regular file: a directory, and a FIFO (reading it would block).
	dir := t.TempDir()
	if _, err := membership.LoadMemory(dir, "node-1"); !errors.Is(err, membership.ErrMemory) || !strings.Contains(err.Error(), "is not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err == nil {
		if _, err := membership.LoadMemory(fifo, "node-1"); !errors.Is(err, membership.ErrMemory) || !strings.Contains(err.Error(), "is not a regular file") {
			t.Errorf("a FIFO: %v", err)
		}
	}
}

func FuzzLoadMemory(f *testing.F) {
	f.Add([]byte(`{"version":1,"node":"node-1","members":[{"name":"node-2","gossip":"127.0.0.1:7012","address":"127.0.0.1:7011"}]}`))
	f.Add([]byte(`{"version":1,"node":"node-1","members":[{"name":"node-2","gossip":"[::1]:1"}]}`))
	f.Add([]byte(`{"version":1,"node":"node-1","members":null}`))
	f.Add([]byte("\xff"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "members.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		rs, err := membership.LoadMemory(path, "node-1")
		if err != nil {
			if !errors.Is(err, membership.ErrMemory) || rs != nil {
				t.Fatalf("refused with %v and members %v", err, rs)
			}
			return
		}
		// What is accepted is written back the same.
		if err := membership.SaveMemory(path, "node-1", rs); err != nil {
			t.Fatal(err)
		}
		again, err := membership.LoadMemory(path, "node-1")
		if err != nil || !slices.Equal(again, rs) {
			t.Fatalf("accepted %v, read back %v %v", rs, again, err)
		}
	})
}

// peers records a FeedPeers directory.
type peers struct {
	mu  sync.Mutex
	dir map[string]string
}

func (p *peers) SetPeer(name, addr string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dir[name] = addr
	return nil
}

func (p *peers) RemovePeer(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.dir, name)
}

func (p *peers) get(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dir[name]
}

// TestRestartRejoinsRememberedMembers: node-1 starts the cluster without
// seeds, crashes, and comes back without seeds: it joins the members it
// remembers at once, and FeedPeers gives their remote addresses before
// gossip does.
func TestRestartRejoinsRememberedMembers(t *testing.T) {
	memory := filepath.Join(t.TempDir(), "members.json")
	nodes := startCluster(t, 3, func(cfg *membership.Config) {
		cfg.Address = "127.0.0.1:1" + string(cfg.Name[len("node-"):]) // a remote address to remember
		if cfg.Name == "node-1" {
			cfg.Memory = memory
		}
	})
	allSeeAll(t, nodes, names(3))
	actortest.Eventually(t, 10*time.Second, "node-1's members file lists node-2 and node-3", func() bool {
		rs, err := membership.LoadMemory(memory, "node-1")
		return err == nil && len(rs) == 2 && rs[0].Name == "node-2" && rs[1].Name == "node-3" && rs[1].Address == "127.0.0.1:13"
	})
	addr := nodes[0].GossipAddr()
	_ = nodes[0].Shutdown() // a crash: no goodbye

	var log syncBuffer
	back, err := start(t, membership.Config{Name: "node-1", Bind: addr, Memory: memory, Address: "127.0.0.1:11",
		Logger: zerolog.New(&log)})
	if err != nil {
		t.Fatal(err)
	}
	nodes[0] = back
	if got := back.Remembered(); len(got) != 2 {
		t.Fatalf("remembered %v, want node-2 and node-3", got)
	}
	dir := &peers{dir: map[string]string{}}
	back.FeedPeers(dir)
	if a := dir.get("node-3"); a != "127.0.0.1:13" {
		t.Errorf("FeedPeers gave node-3 at %q, want its remembered address 127.0.0.1:13", a)
	}
	allSeeAll(t, nodes, names(3))
	actortest.Eventually(t, 10*time.Second, "the log says node-1 joined through remembered members", func() bool {
		return strings.Contains(log.String(), "joined through remembered members")
	})
}

// TestRefusedMemoryIsLoggedAndReplaced: a garbage members file does not
// stop the node; it is logged, naming the file, and rewritten with the
// view.
func TestRefusedMemoryIsLoggedAndReplaced(t *testing.T) {
	memory := filepath.Join(t.TempDir(), "members.json")
	if err := os.WriteFile(memory, []byte(`{"version":1,"node":"node-2","members":[{"name":"../../etc","gossip":"x"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	nodes := startCluster(t, 2, func(cfg *membership.Config) {
		if cfg.Name == "node-2" {
			cfg.Memory, cfg.Logger = memory, zerolog.New(&log)
		}
	})
	if out := log.String(); !strings.Contains(out, "refusing the members file") || !strings.Contains(out, memory) ||
		!strings.Contains(out, `member name \"../../etc\" has '/'`) {
		t.Errorf("log does not name the file and the problem:\n%s", out)
	}
	if rs := nodes[1].Remembered(); len(rs) != 0 {
		t.Errorf("remembered %v from a refused file", rs)
	}
	allSeeAll(t, nodes, names(2))
	actortest.Eventually(t, 10*time.Second, "the members file is rewritten with node-1", func() bool {
		rs, err := membership.LoadMemory(memory, "node-2")
		return err == nil && len(rs) == 1 && rs[0].Name == "node-1"
	})
}

// TestFeedPeersGivesRememberedAddresses: a node without seeds whose
// remembered members do not answer starts at once, and FeedPeers gives
// their remote addresses all the same (raft dials them until they are
// back).
func TestFeedPeersGivesRememberedAddresses(t *testing.T) {
	memory := filepath.Join(t.TempDir(), "members.json")
	gone := []membership.Remembered{{Name: "node-9", Gossip: "127.0.0.1:1", Address: "127.0.0.1:2"}}
	if err := membership.SaveMemory(memory, "node-1", gone); err != nil {
		t.Fatal(err)
	}
	n, err := start(t, membership.Config{Name: "node-1", Memory: memory})
	if err != nil {
		t.Fatalf("a node whose remembered members are gone must start: %v", err)
	}
	defer n.Shutdown()
	dir := &peers{dir: map[string]string{}}
	n.FeedPeers(dir)
	if a := dir.get("node-9"); a != "127.0.0.1:2" {
		t.Errorf("FeedPeers gave node-9 at %q, want 127.0.0.1:2", a)
	}
}

// TestSeedsDownRememberedMemberUp: a node whose only seed is gone joins
// through a member it remembers (node-2 of the README restarted while
// node-1, its seed, is down).
func TestSeedsDownRememberedMemberUp(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	allSeeAll(t, nodes, names(2))
	memory := filepath.Join(t.TempDir(), "members.json")
	if err := membership.SaveMemory(memory, "node-3", []membership.Remembered{{Name: "node-2", Gossip: nodes[1].GossipAddr()}}); err != nil {
		t.Fatal(err)
	}
	n, err := start(t, membership.Config{Name: "node-3", Seeds: []string{"127.0.0.1:1"}, Memory: memory})
	if err != nil {
		t.Fatalf("joining with the seed down and a remembered member up: %v", err)
	}
	defer n.Shutdown()
	nodes = append(nodes, n)
	allSeeAll(t, nodes, names(3))
}

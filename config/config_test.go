package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/config"
	"github.com/troupe-dev/troupe/membership"
)

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const full = `
node:
  name: node-1
  bind: 0.0.0.0:7000
  advertise: node-1.troupe
  data_dir: data
  log_level: debug
membership:
  join: [node-0.troupe:7001, 10.0.0.9:7001]
  preset: wan
  gossip_key: MDEyMzQ1Njc4OWFiY2RlZg==   # 16 bytes
  accept_gossip_keys: [ZmVkY2JhOTg3NjU0MzIxMA==]
  probe_interval: 2s
election:
  ok_timeout: 300ms
jobs:
  slots: 3
  part_timeout: 1m
  http_allow: [data.example, 10.0.0.2:8000]
  backup: -1
raft:
  peers: [node-0, node-1, node-2]
api:
  listen: 0.0.0.0:8080
  token_file: token
  open_paths: [/metrics]
`

func TestLoadAFullFile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "token", "0123456789abcdef0123\n")
	f := write(t, dir, "node.yaml", full)
	c, err := config.Load(config.Sources{File: f})
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]any{
		"node.name": "node-1", "node.advertise": "node-1.troupe", "node.data_dir": filepath.Join(dir, "data"),
		"membership.join": []string{"node-0.troupe:7001", "10.0.0.9:7001"}, "membership.preset": "wan",
		"membership.probe_interval": 2 * time.Second, "election.ok_timeout": 300 * time.Millisecond,
		"election.coordinator_timeout": time.Second, // the default
		"jobs.slots":                   3, "jobs.part_timeout": time.Minute, "jobs.backup": -1.0,
		"jobs.http_allow": []string{"data.example", "10.0.0.2:8000"},
		"raft.peers":      []string{"node-0", "node-1", "node-2"}, "api.token_file": filepath.Join(dir, "token"),
	}
	for key, want := range checks {
		if got, _ := c.Value(key); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", key, got, want)
		}
	}
	if c.APIToken() != "0123456789abcdef0123" || len(c.GossipKeys()) != 2 || string(c.GossipKeys()[0]) != "0123456789abcdef" || string(c.GossipKeys()[1]) != "fedcba9876543210" {
		t.Errorf("secrets: token %q, keys %v", c.APIToken(), c.GossipKeys())
	}
	jc, err := c.JobsConfig(dir)
	if err != nil || jc.Slots != 3 || jc.Backup != -1 || len(jc.Runtimes) != 1 {
		t.Errorf("jobs config: %+v, %v", jc, err)
	}
	if m := c.Map(true); m["membership"]["gossip_key"] != "(secret)" || m["jobs"]["part_timeout"] != "1m0s" {
		t.Errorf("redacted map: %v", m)
	}

	// The file as YAML loads back to the same configuration.
	out, err := c.YAML(false)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := config.Load(config.Sources{File: f, Data: out})
	if err != nil {
		t.Fatalf("loading the rendered file: %v\n%s", err, out)
	}
	if ch := config.Changes(c, c2); len(ch) != 0 {
		t.Errorf("the rendered file differs: %+v", ch)
	}
}

func TestPrecedence(t *testing.T) {
	f := write(t, t.TempDir(), "n.yaml", "jobs:\n  slots: 2\nnode:\n  name: from-file\n")
	env := []string{"TROUPE_JOBS_SLOTS=3", "PATH=/bin", "TROUPE_NODE=http://x:8080", "TROUPE_TOKEN=abc"}
	flags := map[string]string{"jobs.slots": "4"}
	for _, c := range []struct {
		src  config.Sources
		want int
	}{
		{config.Sources{}, 0},
		{config.Sources{File: f}, 2},
		{config.Sources{File: f, Env: env}, 3},
		{config.Sources{File: f, Env: env, Flags: flags}, 4},
		{config.Sources{Env: env}, 3},
	} {
		cfg, err := config.Load(c.src)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Jobs.Slots != c.want {
			t.Errorf("%+v: slots %d, want %d", c.src, cfg.Jobs.Slots, c.want)
		}
	}
	cfg, _ := config.Load(config.Sources{Env: []string{"TROUPE_MEMBERSHIP_JOIN=a:1, b:2", "TROUPE_JOBS_EXEC=false"}})
	if !reflect.DeepEqual(cfg.Membership.Join, []string{"a:1", "b:2"}) {
		t.Errorf("a list from the environment: %v", cfg.Membership.Join)
	}
	cfg, err := config.Load(config.Sources{Env: []string{"TROUPE_MEMBERSHIP_BROADCAST_QUEUE_LIMIT=64", "TROUPE_MEMBERSHIP_BROADCAST_ORIGINS=32"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.MembershipBroadcasts(); got != (membership.Broadcasts{QueueLimit: 64, Origins: 32}) {
		t.Errorf("MembershipBroadcasts() = %+v; want QueueLimit 64, Origins 32, DedupeWindow 0 (the default)", got)
	}
	host, _ := os.Hostname()
	if cfg.Node.Name != host {
		t.Errorf("node.name defaults to %q, want the host name %q", cfg.Node.Name, host)
	}
}

func TestBadConfigurationsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		file  string
		env   []string
		flags map[string]string
		want  []string
		never string // a secret that must not appear
	}{
		{file: "jobs:\n  slots: -1\n", want: []string{"jobs.slots (F:2): is -1; use 1 to 1024 (0: one per CPU)"}},
		{file: "jobs:\n  slot: 3\n", want: []string{"jobs.slot (F:2): unknown key; valid keys of jobs: backup, exec, exec_cmd, http_allow,"}},
		{file: "jobz:\n  slots: 3\n", want: []string{"jobz (F:1): unknown section; valid sections: node, membership, election, jobs, raft, telemetry, api, tls"}},
		{file: "jobs:\n  part_timeout: 30\n", want: []string{`jobs.part_timeout (F:2): "30" is not a duration; write a number with a unit`}},
		{file: "jobs:\n  slots: many\n", want: []string{`jobs.slots (F:2): "many" is not an integer`}},
		{file: "jobs:\n  slots: [1, 2]\n", want: []string{"jobs.slots (F:2): must be a single int value"}},
		{file: "jobs:\n  slots:\n", want: []string{"jobs.slots (F:2): has no value"}},
		{file: "jobs:\n  slots: 1\n  slots: 2\n", want: []string{"jobs.slots (F:3): key given twice"}},
		{file: "membership:\n  gossip_key: s3cr3t-not-base64\n", want: []string{"membership.gossip_key (F:2): is not base64"}, never: "s3cr3t"},
		{file: "membership:\n  gossip_key: YWJj\n", want: []string{"membership.gossip_key (F:2): decodes to 3 bytes; a gossip key is 16, 24 or 32 bytes"}},
		{file: "membership:\n  gossip_key: MDEyMzQ1Njc4OWFiY2RlZg==\n  accept_gossip_keys: [c2VjcmV0LW9uZQ==, x-s3cr3t]\n", want: []string{"membership.accept_gossip_keys[0] (F:3): decodes to 10 bytes", "membership.accept_gossip_keys[1] (F:3): is not base64"}, never: "s3cr3t"},
		{file: "membership:\n  accept_gossip_keys: [MDEyMzQ1Njc4OWFiY2RlZg==]\n", want: []string{"membership.accept_gossip_keys (F:2): needs gossip_key"}},
		{file: "api:\n  token: hunter2\n", want: []string{"api.token (F:2): is 7 characters; use at least 16"}, never: "hunter2"},
		{file: "tls:\n  ca: ca.crt\n", want: []string{"tls.ca (F:2): \"" + dir + "/ca.crt\": tls.ca, tls.cert and tls.key go together", "cannot be read"}},
		{file: "election:\n  elector: raft\n", want: []string{`election.elector (F:2): "raft": needs the raft group: set raft.peers`}},
		{file: "election:\n  elector: paxos\n", want: []string{`"paxos": must be bully or raft`}},
		// The protocols' own Validate, named by the key.
		{file: "election:\n  ok_timeout: 5ms\n", want: []string{"election.ok_timeout (F:2): is 5ms; it must be 10ms..1m0s (0: the default)"}},
		{file: "raft:\n  heartbeat_ticks: 20\n  election_ticks: 10\n", want: []string{"raft.election_ticks (F:3): is 10; use more than raft.heartbeat_ticks (20), up to 10000"}},
		{file: "raft:\n  tick_interval: 1m\n", want: []string{"raft.tick_interval (F:2): is 1m0s; use 1ms to 10s"}},
		{file: "raft:\n  peers: [a, b/c]\nnode:\n  name: a\n", want: []string{`raft.peers (F:2): peer name "b/c"`}},
		{file: "jobs:\n  max_memory: 1\n", want: []string{"jobs.max_memory (F:2): is 1048576 bytes; use 33554432 (32 MiB) to 1 TiB"}},
		{file: "node:\n  bind: localhost\n", want: []string{`node.bind (F:2): "localhost": must be host:port`}},
		{file: "membership:\n  join: [a:1, b]\n", want: []string{`membership.join[1] (F:2): "b": must be host:port`}},
		{file: "raft:\n  peers: [x, y]\nnode:\n  name: a\n  data_dir: d\n", want: []string{`raft.peers (F:2): [x, y]: does not name this node (a)`}},
		{file: "membership:\n  gossip_nodes: 1000\n  tcp_timeout: 1ms\n", want: []string{"membership.gossip_nodes (F:2): 1000: must be 0..64 (0: the preset's)", "membership.tcp_timeout (F:3): 1ms: must be 100ms..5m0s"}},
		{file: "membership:\n  broadcast_queue_limit: -1\n  broadcast_dedupe_window: 10\n  broadcast_origins: 100000\n", want: []string{
			"membership.broadcast_queue_limit (F:2): -1: must be 1..65536 (0: the default 1024)",
			"membership.broadcast_dedupe_window (F:3): 10: must be 64..65536 (0: the default 1024)",
			"membership.broadcast_origins (F:4): 100000: must be 16..65536 (0: the default 1024)"}},
		{file: "membership:\n  broadcast_dedupe_window: 65536\n  broadcast_origins: 8192\n", want: []string{
			"membership.broadcast_origins (F:3): 8192: × broadcast_dedupe_window (65536) must be at most 268435456 (64 MiB of de-duplication windows)"}},
		{env: []string{"TROUPE_MEMBERSHIP_AWARENESS_MAX_MULTIPLIER=-1"}, want: []string{"membership.awareness_max_multiplier (TROUPE_MEMBERSHIP_AWARENESS_MAX_MULTIPLIER): -1: must be 0..64 (0: the preset's)"}},
		{file: "node: [1]\n", want: []string{"node (F:1): must be a mapping of keys"}},
		{file: "- a\n- b\n", want: []string{"(F:1): the file must be a mapping of sections"}},
		{file: "jobs: {slots: 1\n", want: []string{"(F): not valid YAML"}},
		{file: "jobs:\n  slots: -1\n  max_parts: 0\n", want: []string{"jobs.slots", "jobs.max_parts (F:3): is 0; use 1 to 1000000"}},
		{env: []string{"TROUPE_JOBS_SLOT=3"}, want: []string{"(TROUPE_JOBS_SLOT): not a configuration key; valid for jobs: TROUPE_JOBS_SLOTS,"}},
		{env: []string{"TROUPE_JOBS_SLOTS=-5"}, want: []string{"jobs.slots (TROUPE_JOBS_SLOTS): is -5; use 1 to 1024"}},
		{flags: map[string]string{"jobs.slots": "x"}, want: []string{`jobs.slots (--slots): "x" is not an integer`}},
		{flags: map[string]string{"raft.force_new_state": "true", "raft.peers": "node-1", "node.name": "node-1"},
			want: []string{"raft.force_new_state (--force-new-state): is set and raft.join is not; a node started over must not bootstrap the group"}},
		{file: "raft:\n  peers: [a]\n  force_new_state: true\nnode:\n  name: a\n", want: []string{"raft.force_new_state (F:3): is set and raft.join is not"}},
	} {
		src := config.Sources{Env: c.env, Flags: c.flags}
		if c.file != "" {
			src.File = write(t, dir, "F", c.file)
		}
		_, err := config.Load(src)
		if err == nil || !errors.Is(err, config.ErrInvalid) {
			t.Errorf("%q %v: %v, want ErrInvalid", c.file, c.env, err)
			continue
		}
		msg := strings.ReplaceAll(err.Error(), filepath.Join(dir, "F"), "F")
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%q %v:\n%s\nwant it to contain %q", c.file, c.env, msg, w)
			}
		}
		if c.never != "" && strings.Contains(msg, c.never) {
			t.Errorf("the error shows the secret: %s", msg)
		}
		var ce *config.Error
		if !errors.As(err, &ce) {
			t.Errorf("%q: no *config.Error in %v", c.file, err)
		}
	}
}

func TestChanges(t *testing.T) {
	dir := t.TempDir()
	tok := write(t, dir, "token", "first-token-0123456789")
	old, err := config.Load(config.Sources{File: write(t, dir, "a.yaml", "api:\n  token_file: token\njobs:\n  slots: 2\n")})
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "token", "second-token-0123456789")
	next, err := config.Load(config.Sources{File: write(t, dir, "b.yaml", "api:\n  token_file: token\njobs:\n  slots: 4\nnode:\n  bind: 127.0.0.1:7100\n")})
	if err != nil {
		t.Fatal(err)
	}
	_ = tok
	got := map[string]config.Change{}
	for _, ch := range config.Changes(old, next) {
		got[ch.Key.Name] = ch
	}
	if len(got) != 3 {
		t.Fatalf("changes %v, want node.bind, jobs.slots, api.token", got)
	}
	if c := got["jobs.slots"]; !c.Key.Live || c.Old != "2" || c.New != "4" {
		t.Errorf("jobs.slots: %+v", c)
	}
	if c := got["node.bind"]; c.Key.Live {
		t.Errorf("node.bind is live: %+v", c)
	}
	if c := got["api.token"]; c.Key.Live || c.Old != "(secret)" || c.New != "(secret)" {
		t.Errorf("api.token (its file changed): %+v, want a restart-only change", c)
	}
}

// TestControlKeysNeedARestart: the keys that can run code or widen access
// (the exec runtime, the API token, TLS) never change on a running node
// (DESIGN §7).
func TestControlKeysNeedARestart(t *testing.T) {
	for _, name := range []string{"jobs.exec", "jobs.exec_cmd", "api.token", "api.token_file", "api.tls_cert", "api.tls_key",
		"api.listen", "api.open_paths", "api.insecure", "tls.ca", "tls.cert", "tls.key"} {
		k, ok := config.Lookup(name)
		if !ok || k.Live {
			t.Errorf("%s: found %v, live %v; want a key that needs a restart", name, ok, k.Live)
		}
	}
}

// TestRunTimeChanges: a new configuration that changes a restart-only
// key is refused, naming each such key; an omitted token file is a change
// of the token, refused like any other.
func TestRunTimeChanges(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "token", "first-token-0123456789")
	load := func(text string) *config.Config {
		t.Helper()
		c, err := config.Load(config.Sources{File: write(t, dir, "n.yaml", text)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cur := load("api:\n  token_file: token\njobs:\n  slots: 2\n")
	if ch, err := config.RunTimeChanges(cur, load("api:\n  token_file: token\njobs:\n  slots: 3\n")); err != nil || len(ch) != 1 {
		t.Errorf("a live change: %v %v", ch, err)
	}
	for _, c := range []struct{ text, want string }{
		{"api:\n  token_file: token\njobs:\n  exec: true\n  exec_cmd: [sh]\n", "jobs.exec cannot change at run time; restart the node with the new file"},
		{"api:\n  token_file: token\njobs:\n  exec_cmd: [sh]\n", "jobs.exec_cmd cannot change at run time"},
		{"jobs:\n  slots: 3\n", "api.token cannot change at run time"},
	} {
		_, err := config.RunTimeChanges(cur, load(c.text))
		if !errors.Is(err, config.ErrRestart) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want ErrRestart saying %q", c.text, err, c.want)
		}
	}
}

func TestEveryKeyHasAnEnvironmentVariable(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range config.Keys() {
		if !strings.HasPrefix(k.Env, "TROUPE_"+strings.ToUpper(k.Section)+"_") || seen[k.Env] {
			t.Errorf("%s: env %s", k.Name, k.Env)
		}
		seen[k.Env] = true
	}
}

// docs/operations.md documents every key, in its section's table.
func TestOperationsGuideListsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, s := range config.Sections() {
		i := strings.Index(doc, "#### "+s+"\n")
		if i < 0 {
			t.Errorf("docs/operations.md has no table for section %s", s)
			continue
		}
		table := doc[i+5:]
		if j := strings.Index(table, "\n#"); j >= 0 {
			table = table[:j]
		}
		for _, k := range config.Keys() {
			if k.Section == s && !strings.Contains(table, "| `"+strings.TrimPrefix(k.Name, s+".")+"` |") {
				t.Errorf("docs/operations.md does not document %s", k.Name)
			}
		}
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/config"
)

// loopbackFlags are the flags of a node on loopback: its three ports.
func loopbackFlags(name string, ports []int) map[string]string {
	return map[string]string{
		"node.name": name, "membership.preset": "local", "node.log_level": "warn",
		"node.bind":         fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"membership.gossip": fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"api.listen":        fmt.Sprintf("127.0.0.1:%d", ports[2]),
	}
}

// TestRunWithRaft runs three `node run` nodes with the raft group and the
// raft elector, and uses them through the CLI.
func TestRunWithRaft(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	ports := actortest.FreePorts(t, 9) // per node: remote, gossip, http
	names := []string{"n1", "n2", "n3"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, len(names))
	var https []string
	for i, name := range names {
		flags := loopbackFlags(name, ports[3*i:])
		flags["election.elector"], flags["raft.peers"], flags["node.data_dir"] = "raft", strings.Join(names, ","), t.TempDir()
		flags["jobs.max_steps"], flags["jobs.part_timeout"] = "1048576", "1s"
		if i > 0 {
			flags["membership.join"] = fmt.Sprintf("127.0.0.1:%d", ports[1])
		}
		https = append(https, "http://"+flags["api.listen"])
		go func() { done <- runNode(ctx, config.Sources{Flags: flags}) }()
	}
	defer func() {
		cancel()
		for range names {
			if err := <-done; err != nil {
				t.Errorf("node stopped with %v", err)
			}
		}
	}()
	var raftLeader string
	actortest.Eventually(t, 20*time.Second, "a raft leader every node agrees on", func() bool {
		raftLeader = ""
		for _, h := range https {
			out, err := cli(t, "raft", "status", "--node", h, "--timeout", "1s")
			if err != nil {
				return false
			}
			l := strings.Fields(strings.Split(out, "\n")[1])[1]
			if l == "(none)" || raftLeader != "" && l != raftLeader {
				return false
			}
			raftLeader = l
		}
		return true
	})
	if out, err := cli(t, "kv", "put", "--node", https[0], "greeting", "hello"); err != nil {
		t.Fatalf("kv put: %v\n%s", err, out)
	}
	if out, err := cli(t, "kv", "get", "--node", https[2], "greeting"); err != nil || out != "hello\n" {
		t.Fatalf("kv get on another node: %v %q", err, out)
	}
	// Lease locks: a token, refused while held, released with the token.
	token, err := cli(t, "lock", "acquire", "--node", https[1], "jobs-db", "--ttl", "10s")
	if err != nil || strings.TrimSpace(token) == "" {
		t.Fatalf("lock acquire: %v %q", err, token)
	}
	if out, err := cli(t, "lock", "acquire", "--node", https[2], "jobs-db", "--ttl", "10s"); err == nil {
		t.Errorf("a second acquire of a held lock succeeded: %q", out)
	}
	if out, err := cli(t, "lock", "release", "--node", https[0], "jobs-db", "--fencing-token", strings.TrimSpace(token)); err != nil {
		t.Errorf("lock release: %v %q", err, out)
	}
	// The elector follows raft: /v1/leader names the raft leader.
	actortest.Eventually(t, 10*time.Second, "the cluster leader is the raft leader", func() bool {
		out, err := cli(t, "leader", "--node", https[1])
		return err == nil && strings.HasPrefix(out, raftLeader+" term ")
	})
	follower := names[0]
	if follower == raftLeader {
		follower = names[1]
	}
	var followerHTTP string
	for i, n := range names {
		if n == follower {
			followerHTTP = https[i]
		}
	}
	_, err = cli(t, "raft", "transfer", "--node", followerHTTP, follower)
	if err == nil || !strings.Contains(err.Error(), "send it to "+raftLeader) {
		t.Errorf("transfer through a follower: %v, want an error naming the leader %s", err, raftLeader)
	}
	// Every node runs the actor cluster: its protocol follows the
	// membership, and has not failed.
	resp, err := http.Get(https[2] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `troupe_protocol_stopped{node="n3",protocol="actor-cluster"} 0`; err != nil || !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics of n3 (%v) lacks %s", err, want)
	}
}

func TestRunRefusesBadConfigurations(t *testing.T) {
	for _, c := range []struct {
		flags map[string]string
		want  string
	}{
		{map[string]string{"node.name": "a", "election.elector": "paxos"}, `election.elector (--elector): "paxos": must be bully or raft`},
		{map[string]string{"node.name": "a", "election.elector": "raft"}, "needs the raft group"},
		{map[string]string{"node.name": "a", "raft.peers": "b,c"}, "raft.peers (--raft-peers): [b, c]: does not name this node (a)"},
		{map[string]string{"node.name": "a", "jobs.slots": "-1"}, "jobs.slots (--slots): is -1; use 1 to 1024"},
	} {
		err := runNode(context.Background(), config.Sources{Flags: c.flags})
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error containing %q", c.flags, err, c.want)
		}
	}
}

// Every key that names a flag has it on `node run`, and setting the flag
// sets the key.
func TestRunFlagsSetTheirKeys(t *testing.T) {
	cmd := runCmd()
	values := map[string]string{
		"name": "n9", "bind": "127.0.0.1:7100", "advertise": "n9.example", "gossip": "127.0.0.1:7101",
		"http": "127.0.0.1:8100", "join": "a:1,b:2", "data-dir": "/tmp/x", "preset": "wan", "slots": "3",
		"http-allow": "h1,h2:80", "max-steps": "5000", "part-timeout": "2s", "exec": "true", "exec-cmd": "python3,-u",
		"log-level": "debug", "raft-peers": "n9,n8", "raft-join": "true", "elector": "raft",
		"log-format": "console", "protoactor-metrics": "true", "insecure-api": "true", "force-new-state": "true",
	}
	var args []string
	for _, k := range config.Keys() {
		if k.Flag == "" {
			continue
		}
		v, ok := values[k.Flag]
		if !ok {
			t.Errorf("%s has flag --%s, which the test does not set", k.Name, k.Flag)
			continue
		}
		if cmd.Flags().Lookup(k.Flag) == nil {
			t.Errorf("%s: node run has no flag --%s", k.Name, k.Flag)
		}
		args = append(args, "--"+k.Flag+"="+v)
	}
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	got := flagValues(cmd)
	if len(got) != len(values) {
		t.Errorf("flagValues set %d keys, want %d: %v", len(got), len(values), got)
	}
	cfg, err := config.Load(config.Sources{Flags: got})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node.Name != "n9" || cfg.Jobs.PartTimeout != 2*time.Second || len(cfg.Jobs.ExecCmd) != 2 || !cfg.Raft.Join || cfg.API.Listen != "127.0.0.1:8100" {
		t.Errorf("flags did not land: %+v", cfg)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	_ = os.WriteFile(good, []byte("node:\n  name: n1\napi:\n  token: a-token-of-sixteen-chars\njobs:\n  slots: 2\n"), 0o600)
	out, err := cli(t, "config", "check", good)
	if err != nil || !strings.Contains(out, "good.yaml: valid") {
		t.Errorf("check of a good file: %v\n%s", err, out)
	}
	out, err = cli(t, "config", "check", "--print", good)
	if err != nil || !strings.Contains(out, "slots: 2") || !strings.Contains(out, "token: (secret)") || strings.Contains(out, "sixteen") {
		t.Errorf("check --print: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("node:\n  name: n1\njobs:\n  slot: 2\n"), 0o600)
	_, err = cli(t, "config", "check", bad)
	if err == nil || !strings.Contains(err.Error(), "jobs.slot ("+bad+":4): unknown key; valid keys of jobs:") {
		t.Errorf("check of a bad file: %v", err)
	}
}

func TestVersion(t *testing.T) {
	out, err := cli(t, "version")
	if err != nil || !strings.HasPrefix(out, "troupe node ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("version: %v\n%s", err, out)
	}
	// A test binary has no VCS information: the output says why.
	if !strings.Contains(out, "module    github.com/troupe-dev/troupe") || !strings.Contains(out, "commit    unknown: ") ||
		!strings.Contains(out, "built     unknown") {
		t.Errorf("version without VCS information:\n%s", out)
	}
	oldVersion, oldCommit, oldBuilt := version, commit, built
	version, commit, built = "v9.9.9", "0123456789abcdef0123", "2026-01-02T03:04:05Z"
	defer func() { version, commit, built = oldVersion, oldCommit, oldBuilt }()
	if b := buildInfo(); b.Version != "v9.9.9" || b.Commit != commit || b.Built != built || !strings.HasPrefix(versionString(), "v9.9.9 0123456789ab") {
		t.Errorf("-ldflags version, commit and built not used: %+v", b)
	}
	out, err = cli(t, "version")
	if err != nil || !strings.Contains(out, "commit    0123456789abcdef0123\n") || !strings.Contains(out, "built     2026-01-02T03:04:05Z") {
		t.Errorf("version with -ldflags: %v\n%s", err, out)
	}
}

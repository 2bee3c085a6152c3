package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/config"
	"github.com/troupe-dev/troupe/membership"
)

// nodeProcessEnv carries the flags of a node that TestNodeProcess runs in
// a process of its own (the test binary run again), so that a test can
// kill it with SIGKILL: runNode always leaves the cluster gracefully when
// its context ends.
const nodeProcessEnv = "TROUPE_TEST_NODE_FLAGS"

// TestNodeProcess is not a test: it is the node of a process that
// startNodeProcess starts.
func TestNodeProcess(t *testing.T) {
	spec := os.Getenv(nodeProcessEnv)
	if spec == "" {
		t.Skip("runs only as a node process started by another test (startNodeProcess)")
	}
	var flags map[string]string
	if err := json.Unmarshal([]byte(spec), &flags); err != nil {
		fmt.Fprintln(os.Stderr, "node process:", err)
		os.Exit(2)
	}
	if err := runNode(context.Background(), config.Sources{Flags: flags}); err != nil {
		fmt.Fprintln(os.Stderr, "node process:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// startNodeProcess runs a node with flags in a process of its own, its
// log appended to logFile; the test's end kills it.
func startNodeProcess(t *testing.T, flags map[string]string, logFile string) *exec.Cmd {
	t.Helper()
	spec, err := json.Marshal(flags)
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestNodeProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), nodeProcessEnv+"="+string(spec))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// raftStatus is what the test reads of GET /v1/raft.
type raftStatus struct {
	Leader string `json:"leader"`
}

func getStatus(client *http.Client, base string) (raftStatus, bool) {
	var st raftStatus
	resp, err := client.Get(base + "/v1/raft")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return st, false
	}
	return st, true
}

// TestRestartedNodeRejoinsFromMemory is the README's recipe: node-1 starts
// the cluster without --join, node-2 and node-3 join through it, all with
// the raft group and a data dir. node-1 is killed with SIGKILL and
// started again, still without --join: it rejoins the members it
// remembers (its data dir's members.json) and gives raft their addresses
// at once, so it serves a linearizable read as soon as it is up, rather
// than when gossip finds it (13–29 s before, with the lan preset).
func TestRestartedNodeRejoinsFromMemory(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	ports := actortest.FreePorts(t, 9) // per node: remote, gossip, http
	names := []string{"node-1", "node-2", "node-3"}
	flags := make([]map[string]string, len(names))
	https := make([]string, len(names))
	for i, name := range names {
		flags[i] = loopbackFlags(name, ports[3*i:])
		// The README's nodes: the lan preset (its push-pull every 30 s and
		// its reconnection to failed members every 60 s would find
		// node-1 late).
		flags[i]["membership.preset"] = "lan"
		flags[i]["election.elector"], flags[i]["raft.peers"], flags[i]["node.data_dir"] = "raft", strings.Join(names, ","), t.TempDir()
		if i > 0 {
			flags[i]["membership.join"] = flags[0]["membership.gossip"]
		}
		https[i] = "http://" + flags[i]["api.listen"]
	}
	flags[0]["node.log_level"] = "info"
	logFile := filepath.Join(t.TempDir(), "node-1.log")
	defer func() {
		if t.Failed() {
			out, _ := os.ReadFile(logFile)
			t.Logf("node-1's log:\n%s", out)
		}
	}()
	node1 := startNodeProcess(t, flags[0], logFile)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	for _, f := range flags[1:] {
		go func() { done <- runNode(ctx, config.Sources{Flags: f}) }()
	}
	defer func() {
		cancel()
		for range 2 {
			select { // a hang detector, not a performance bound
			case err := <-done:
				if err != nil {
					t.Errorf("node stopped with %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("a node did not stop within 30 s")
			}
		}
	}()

	client := &http.Client{Timeout: time.Second}
	leaderOf := func(nodes []string) string {
		leader := ""
		for _, h := range nodes {
			st, ok := getStatus(client, h)
			if !ok || st.Leader == "" || leader != "" && st.Leader != leader {
				return ""
			}
			leader = st.Leader
		}
		return leader
	}
	actortest.Eventually(t, 30*time.Second, "a raft leader the three nodes agree on", func() bool { return leaderOf(https) != "" })
	if out, err := cli(t, "kv", "put", "--node", https[1], "greeting", "hello"); err != nil {
		t.Fatalf("kv put: %v\n%s", err, out)
	}
	memory := filepath.Join(flags[0]["node.data_dir"], membersFileName)
	actortest.Eventually(t, 20*time.Second, "node-1's members file names node-2 and node-3 with their addresses", func() bool {
		rs, err := membership.LoadMemory(memory, "node-1")
		return err == nil && len(rs) == 2 && rs[0].Name == "node-2" && rs[0].Address == flags[1]["node.bind"] &&
			rs[1].Name == "node-3" && rs[1].Address == flags[2]["node.bind"]
	})

	// kill -9: no goodbye, no flush.
	if err := node1.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = node1.Wait()
	var leader string
	actortest.Eventually(t, 30*time.Second, "node-2 and node-3 agree on a leader other than node-1", func() bool {
		leader = leaderOf(https[1:])
		return leader != "" && leader != "node-1"
	})
	hasLeader := time.Now()

	// Back, still without --join.
	startNodeProcess(t, flags[0], logFile)
	started := time.Now()
	var up time.Time // node-1's API first answered
	read := func() bool {
		resp, err := client.Get(https[0] + "/v1/kv/greeting")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if up.IsZero() {
			up = time.Now()
		}
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && bytes.Equal(body, []byte("hello"))
	}
	// A generous bound for a loaded machine: the figure is logged, and
	// cmd/bench kv measures it (restart_ready_p99_ms).
	actortest.Eventually(t, 20*time.Second, "a linearizable read through the restarted node-1", read)
	ready := time.Now()
	t.Logf("leader %s; restart of node-1 to its first linearizable read: %v (its API up after %v, so %v after it answered; the group had its leader %v before the restart)",
		leader, ready.Sub(started).Round(time.Millisecond), up.Sub(started).Round(time.Millisecond),
		ready.Sub(up).Round(time.Millisecond), started.Sub(hasLeader).Round(time.Millisecond))
	out, _ := os.ReadFile(logFile)
	if !strings.Contains(string(out), "remembered members loaded") {
		t.Errorf("node-1's log does not say it loaded its remembered members")
	}
}

package main

import (
	"bytes"
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/mutex"
	"github.com/troupe-dev/troupe/transport/sim"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := rootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestKVCommands(t *testing.T) {
	c := clustertest.NewCluster(t, 3, cluster.Sim(sim.Config{Seed: 1}))
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
	kc, err := kv.NewClient(c.Node("node-2"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(kv.HTTPHandler(kc))
	t.Cleanup(srv.Close)
	// Until a leader is elected, puts are refused (election, no_quorum).
	actortest.Eventually(t, 5*time.Second, "a put is accepted", func() bool {
		_, err := runCLI(t, "kv", "put", "greeting", "hello", "--node", srv.URL)
		return err == nil
	})
	steps := []struct {
		args    []string
		out     string // expected output, or
		errPart string // a part of the expected error
	}{
		{[]string{"kv", "get", "greeting"}, "hello\n", ""},
		{[]string{"kv", "put", "greeting", "bye", "--prev", "nope"}, "", `current value "hello"`},
		{[]string{"kv", "put", "greeting", "bye", "--prev", "hello"}, "ok (index", ""},
		{[]string{"kv", "get", "greeting"}, "bye\n", ""},
		{[]string{"kv", "del", "greeting"}, "deleted\n", ""},
		{[]string{"kv", "get", "greeting"}, "", "not_found"},
		{[]string{"kv", "put", "a key with spaces/and/slashes", "v"}, "ok", ""},
		{[]string{"kv", "get", "a key with spaces/and/slashes"}, "v\n", ""},
		{[]string{"kv", "put", "bad\tkey", "v"}, "", "invalid_key"},
	}
	for _, s := range steps {
		out, err := runCLI(t, append(s.args, "--node", srv.URL)...)
		if s.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), s.errPart) {
				t.Errorf("%v: err %v, want one mentioning %q", s.args, err, s.errPart)
			}
			continue
		}
		if err != nil || !strings.HasPrefix(out, s.out) {
			t.Errorf("%v: %q %v, want %q", s.args, out, err, s.out)
		}
	}
	if _, err := runCLI(t, "kv", "get", "k", "--node", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "reaching the node") {
		t.Errorf("an unreachable node: %v", err)
	}
}

func TestKVServe(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		done <- runKVServe(ctx, &out, kvServeOptions{nodes: 1, listen: addr, dataDir: t.TempDir(), noSync: true})
	}()
	actortest.Eventually(t, 10*time.Second, "serve accepts a put", func() bool {
		_, err := runCLI(t, "kv", "put", "k", "v", "--node", addr, "--timeout", "500ms")
		return err == nil
	})
	if got, err := runCLI(t, "kv", "get", "k", "--node", addr); err != nil || got != "v\n" {
		t.Errorf("get: %q %v", got, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// A node left without a quorum says so: kv put and lock acquire print how
// many voters it reaches, and neither tells the user to retry.
func TestKVAndLockWithoutQuorum(t *testing.T) {
	c := clustertest.NewCluster(t, 3, cluster.Sim(sim.Config{Seed: 3}))
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
	kc, err := kv.NewClient(c.Node("node-1"))
	if err != nil {
		t.Fatal(err)
	}
	leases, err := mutex.NewLeases(c.Node("node-1"))
	if err != nil {
		t.Fatal(err)
	}
	kvSrv := httptest.NewServer(kv.HTTPHandler(kc))
	t.Cleanup(kvSrv.Close)
	lockSrv := httptest.NewServer(mutex.HTTPHandler(leases))
	t.Cleanup(lockSrv.Close)
	actortest.Eventually(t, 5*time.Second, "a put is accepted", func() bool {
		_, err := runCLI(t, "kv", "put", "k", "v", "--node", kvSrv.URL)
		return err == nil
	})
	c.Hub.Partition([]string{"node-1"})
	var kvErr error
	actortest.Eventually(t, 10*time.Second, "kv put says no quorum", func() bool {
		_, kvErr = runCLI(t, "kv", "put", "k", "v2", "--node", kvSrv.URL)
		return kvErr != nil && strings.Contains(kvErr.Error(), "no_quorum")
	})
	if msg := kvErr.Error(); !strings.Contains(msg, "1 of 3 voters") || strings.Contains(msg, "retry") {
		t.Errorf("kv put without a quorum: %q; want the count of voters reachable and no \"retry\"", msg)
	}
	_, lockErr := runCLI(t, "lock", "acquire", "x", "--ttl", "1s", "--node", lockSrv.URL)
	if lockErr == nil || !strings.Contains(lockErr.Error(), "1 of 3 voters") || strings.Contains(lockErr.Error(), "retry") {
		t.Errorf("lock acquire without a quorum: %v; want the count of voters reachable and no \"retry\"", lockErr)
	}
}

package main

import (
	"net/http/httptest"
	"strconv"
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

func TestLockCommands(t *testing.T) {
	c := clustertest.NewCluster(t, 3, cluster.Sim(sim.Config{Seed: 2}))
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
	leases, err := mutex.NewLeases(c.Node("node-3"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mutex.HTTPHandler(leases))
	t.Cleanup(srv.Close)
	addr := []string{"--node", srv.URL}

	var out string
	actortest.Eventually(t, 5*time.Second, "an acquire is granted (once a leader is elected)", func() bool {
		out, err = runCLI(t, append([]string{"lock", "acquire", "backup/db", "--ttl", "10s", "--owner", "cron"}, addr...)...)
		return err == nil
	})
	token, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil || token == 0 {
		t.Fatalf("acquire printed %q; want the token alone", out)
	}
	steps := []struct {
		args    []string
		out     string // expected output, or
		errPart string // a part of the expected error
	}{
		{[]string{"lock", "acquire", "backup/db", "--ttl", "1s"}, "", "held by cron"},
		{[]string{"lock", "release", "backup/db", "--fencing-token", strconv.FormatUint(token+1, 10)}, "", "does not hold"},
		{[]string{"lock", "release", "backup/db", "--fencing-token", strconv.FormatUint(token, 10)}, "released\n", ""},
		{[]string{"lock", "release", "backup/db", "--fencing-token", strconv.FormatUint(token, 10)}, "", "nobody holds"},
		{[]string{"lock", "acquire", "x", "--ttl", "50ms"}, "", "100ms"},
		{[]string{"lock", "acquire", "x", "--ttl", "1h"}, "", "100ms to 10m0s"},
		{[]string{"lock", "acquire", "x", "--ttl", "1500500us"}, "", "whole milliseconds"},
		{[]string{"lock", "acquire", "x"}, "", `"ttl" not set`},
		{[]string{"lock", "acquire", "bad name", "--ttl", "1s"}, "", "lock name"},
		{[]string{"lock", "release", "x"}, "", `"fencing-token" not set`},
	}
	for _, s := range steps {
		out, err := runCLI(t, append(s.args, addr...)...)
		if s.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), s.errPart) {
				t.Errorf("%v: err %v, want one mentioning %q", s.args, err, s.errPart)
			}
			continue
		}
		if err != nil || out != s.out {
			t.Errorf("%v: %q %v, want %q", s.args, out, err, s.out)
		}
	}
	out, err = runCLI(t, append([]string{"lock", "acquire", "backup/db", "--ttl", "10s"}, addr...)...)
	if next, _ := strconv.ParseUint(strings.TrimSpace(out), 10, 64); err != nil || next <= token {
		t.Errorf("acquire after the release: %q %v; want a token above %d", out, err, token)
	}
	if _, err := runCLI(t, "lock", "acquire", "k", "--ttl", "1s", "--node", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "reaching the node") {
		t.Errorf("an unreachable node: %v", err)
	}
}

package main

import (
	"bytes"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/troupe-dev/troupe/actors/actortest"
)

// TestKVReportsEveryFigure runs `bench kv` at its smallest (one short row,
// one failover, two follower restarts) and checks that the last line names
// every figure scripts read, the restart ones with the old ones.
func TestKVReportsEveryFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts raft groups on loopback")
	}
	actortest.SkipRemoteUnderRace(t)
	var out bytes.Buffer
	cmd := rootCmd()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"kv", "--fsync", "on", "--clients", "1", "--duration", "100ms",
		"--single=false", "--failovers", "1", "--restarts", "2", "--dir", t.TempDir()})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("bench kv: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	for _, name := range []string{"writes_per_s_fsync=", "writes_per_s_nofsync=", "replication_ratio=",
		"failover_p99_ms=", "restart_ready_p50_ms=", "restart_ready_p99_ms="} {
		if !strings.Contains(last, name) {
			t.Errorf("last line %q lacks %s", last, name)
		}
	}
	if got := strings.Count(out.String(), "served a read after"); got != 2 {
		t.Errorf("%d restart rounds reported, want 2:\n%s", got, out.String())
	}
}

// TestKVRejectsNegativeRestarts: --restarts below 0 is refused by name.
func TestKVRejectsNegativeRestarts(t *testing.T) {
	cmd := rootCmd()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetArgs([]string{"kv", "--restarts", "-1"})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "--restarts") {
		t.Fatalf("bench kv --restarts -1: %v, want an error naming --restarts", err)
	}
}

// TestKVVsEtcdWithoutEtcd: with no etcd on PATH, --vs-etcd says how to
// install it and fails before it starts or builds anything.
func TestKVVsEtcdWithoutEtcd(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	var out bytes.Buffer
	cmd := rootCmd()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"kv", "--vs-etcd"})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "apt-get install etcd-server") {
		t.Fatalf("bench kv --vs-etcd without etcd: %v, want an error saying apt-get install etcd-server", err)
	}
	if out.Len() != 0 {
		t.Errorf("it printed %q: it should stop before starting anything", out.String())
	}
}

// TestKVVsEtcdSmoke runs `bench kv --vs-etcd` at its smallest (one round
// of 200 ms at one client, no failover) when etcd is on PATH, and parses
// its last line.
func TestKVVsEtcdSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and Troupe processes")
	}
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("no etcd on PATH (apt-get install etcd-server)")
	}
	var out bytes.Buffer
	cmd := rootCmd()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"kv", "--vs-etcd", "--rounds", "1", "--clients", "1", "--duration", "200ms",
		"--keys", "20", "--failovers", "1", "--dir", t.TempDir()})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("bench kv --vs-etcd: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	fields := strings.Fields(lines[len(lines)-1])
	names := []string{"vs_etcd_put_c64", "vs_etcd_get_c64", "vs_etcd_put_c1_p50"}
	if len(fields) != len(names) {
		t.Fatalf("last line %q: want %d name=value pairs %v\n%s", lines[len(lines)-1], len(names), names, out.String())
	}
	for i, f := range fields {
		name, value, ok := strings.Cut(f, "=")
		if !ok || name != names[i] {
			t.Fatalf("last line %q: field %d is %q, want %s=<ratio>", lines[len(lines)-1], i+1, f, names[i])
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Errorf("%s=%q does not parse: %v", name, value, err)
		}
		// At one client only the latency ratio is measured; c64 is NaN.
		if name == "vs_etcd_put_c1_p50" && !(v > 0) {
			t.Errorf("%s=%v, want a positive ratio\n%s", name, v, out.String())
		}
	}
	for _, want := range []string{"failover etcd", "failover troupe"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q line:\n%s", want, out.String())
		}
	}
}

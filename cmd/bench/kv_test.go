package main

import (
	"bytes"
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

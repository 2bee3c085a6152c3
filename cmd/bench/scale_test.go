package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestScaleSmall runs the scale bench on 3 and 25 simulated nodes (seed
// 1, nodes starting within 1 s): it prints the per-protocol table and the
// contract's last line, and the cold start settles with one claim (a
// Coordinator and its ack per other node) and one more Coordinator per
// node the leader learned of after it: at most 4·(N−1) election messages
// here (docs/election.md has the law at larger N).
func TestScaleSmall(t *testing.T) {
	var out bytes.Buffer
	cmd := scaleCmd()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--nodes", "3,25", "--boot", "3s", "--idle", "2s"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("scale: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	m := regexp.MustCompile(`^idle_msgs_per_node_n25=([0-9.]+) idle_msgs_per_node_n1000=0\.00 idle_bytes_per_node_n1000=0 boot_election_msgs_n100=0$`).FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("last line %q does not follow the contract", last)
	}
	if v, _ := strconv.ParseFloat(m[1], 64); v <= 0 {
		t.Errorf("idle messages per node at 25 nodes: %v; telemetry sends a status every second", v)
	}
	if !regexp.MustCompile(`(?m)^\s+25\s+telemetry\s`).MatchString(out.String()) {
		t.Errorf("no telemetry row for 25 nodes in:\n%s", out.String())
	}
	rows := regexp.MustCompile(`(?m)^\s+(3|25)\s+[0-9.]+\s+[0-9]+\s+[0-9.]+\s+([0-9]+)\s`).FindAllStringSubmatch(out.String(), -1)
	if len(rows) != 2 {
		t.Fatalf("%d summary rows in:\n%s", len(rows), out.String())
	}
	for _, r := range rows {
		n, _ := strconv.Atoi(r[1])
		msgs, _ := strconv.Atoi(r[2])
		if msgs == 0 || msgs > 4*(n-1) {
			t.Errorf("%d nodes: %d election messages from the cold start to a settled leader; want 1 to %d", n, msgs, 4*(n-1))
		}
	}
}

func TestScaleRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--nodes", "1"},
		{"--nodes", "6000"},
		{"--idle", "0s"},
		{"--boot", "1s"},
		{"--spread", "-1s"},
		{"--seed", "0"},
	} {
		cmd := scaleCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("scale %v: %v; want an error naming %s", args, err, args[0])
		}
	}
}

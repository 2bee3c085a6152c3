package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/troupe-dev/troupe/actors/actortest"
)

// TestMain fails the package if a goroutine outlives its tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, actortest.LeakOptions()...) }

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := rootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestSweepEndsWithTheFigures(t *testing.T) {
	out, err := run(t, "election", "--seeds", "3", "--duration", "10s", "--parallel", "2")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	for _, f := range []string{"scenario=election", "seeds=3", "failures=0", "virtual_s=30.0", "speedup_vs_realtime=", "parallel=2"} {
		if !strings.Contains(last, f) {
			t.Fatalf("the last line %q lacks %q", last, f)
		}
	}
}

func TestReplayPrintsTheTraceAndTheSameHash(t *testing.T) {
	traced, err := run(t, "election", "--seed", "5", "--duration", "10s", "--trace")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := run(t, "election", "--seed", "5", "--duration", "10s")
	if err != nil {
		t.Fatal(err)
	}
	hash := func(s string) string {
		i := strings.Index(s, "hash=")
		if i < 0 {
			t.Fatalf("no hash in %q", s)
		}
		return strings.Fields(s[i:])[0]
	}
	if hash(traced) != hash(plain) {
		t.Fatalf("seed 5 gave %s with --trace and %s without", hash(traced), hash(plain))
	}
	// Bully settles in O(N) messages (docs/election.md), so the trace is
	// short: it must still show each kind of event.
	for _, kind := range []string{" timer node-", " send node-", " run node-", " act nemesis"} {
		if !strings.Contains(traced, kind) {
			t.Fatalf("--trace printed %d lines, none with %q:\n%s", strings.Count(traced, "\n"), kind, traced)
		}
	}
}

func TestBadInputIsRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `no scenario "nope"`},
		{[]string{"raft-kv", "--seed", "0"}, "seeds start at 1"},
		{[]string{"raft-kv", "--trace"}, "give --seed S too"},
		{[]string{"raft-kv", "--seed", "1", "--seeds", "2"}, "give one of them"},
		{[]string{"raft-kv", "--profile", "calm", "--seed", "1"}, "valid: [mixed crash-storm partitions]"},
		{[]string{"raft-kv", "--seeds", "0"}, "at least one seed"},
	} {
		if _, err := run(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one saying %q", c.args, err, c.want)
		}
	}
}

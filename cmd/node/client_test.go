package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/jobs/jobstest"
)

// cli runs the node command with args and returns its stdout.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := rootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	return out.String() + errOut.String(), err
}

func TestCommandsAgainstANode(t *testing.T) {
	cfg := jobs.DefaultConfig()
	cfg.Slots = 1
	c := jobstest.NewCluster(t, 3, cfg)
	srv := httptest.NewServer(api.New(c.Node("node-1"), api.Config{}))
	defer srv.Close()

	dir := t.TempDir()
	input := filepath.Join(dir, "in.json")
	if err := os.WriteFile(input, []byte(`{"limit": 1000}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := cli(t, "job", "submit", "--node", srv.URL, "../../examples/jobs/cpu.star", "--input", input, "--parts", "4", "--wait")
	if err != nil {
		t.Fatalf("submit --wait: %v\n%s", err, out)
	}
	// Progress lines (not a terminal: one per change), then the result.
	if !strings.Contains(out, "succeeded parts 4/4") || !strings.Contains(out, `"primes": 168`) {
		t.Errorf("submit --wait printed:\n%s", out)
	}
	out, err = cli(t, "job", "list", "--node", srv.URL)
	if err != nil || !strings.Contains(out, "succeeded") || !strings.Contains(out, "4/4") {
		t.Errorf("list: %v\n%s", err, out)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	out, err = cli(t, "job", "status", "--node", srv.URL, id)
	var st jobs.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.State != jobs.Succeeded || st.PartsDone != 4 {
		t.Errorf("status: %v\n%s", err, out)
	}
	out, err = cli(t, "members", "--node", srv.URL)
	if err != nil || strings.Count(out, "alive") != 3 {
		t.Errorf("members: %v\n%s", err, out)
	}
	out, err = cli(t, "leader", "--node", srv.URL)
	if err != nil || !strings.HasPrefix(out, "node-3 term ") {
		t.Errorf("leader: %v\n%s", err, out)
	}
	_, err = cli(t, "job", "cancel", "--node", srv.URL, "node-1.x.404")
	if err == nil || !strings.Contains(err.Error(), "no such job") || !strings.Contains(err.Error(), "404") {
		t.Errorf("cancel of an unknown job: %v", err)
	}
	bad := filepath.Join(dir, "bad.star")
	if err := os.WriteFile(bad, []byte("def split(i, n)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = cli(t, "job", "submit", "--node", srv.URL, bad, "--wait")
	if err == nil || !strings.Contains(err.Error(), "failed") || !strings.Contains(err.Error(), "load: ") || !strings.Contains(err.Error(), "bad.star:2:1") {
		t.Errorf("a script with a syntax error: %v", err)
	}
}

// TestJobCancelThroughAnotherNode: `job cancel` at a node that is not the
// job's contact prints the job's status at the contact, cancelled.
func TestJobCancelThroughAnotherNode(t *testing.T) {
	cfg := jobs.DefaultConfig()
	cfg.Slots = 1
	c := jobstest.NewCluster(t, 3, cfg)
	srv := httptest.NewServer(api.New(c.Node("node-2"), api.Config{}))
	defer srv.Close()
	spin := "def split(i, n):\n    return [1]\ndef run(p):\n    while True:\n        pass\ndef merge(r):\n    return r\n"
	sub, err := actors.Call(context.Background(), c.Node("node-1"), jobs.Name, jobs.Submit{Script: spin})
	if err != nil {
		t.Fatal(err)
	}
	out, err := cli(t, "job", "cancel", "--node", srv.URL, sub.ID)
	var st jobs.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.ID != sub.ID || st.State != jobs.Cancelled || st.Contact != "node-1" {
		t.Errorf("cancel through node-2: %v\n%s", err, out)
	}
}

func TestProgressLine(t *testing.T) {
	st := jobs.Status{State: jobs.Running, PartsDone: 10, PartsTotal: 40, Progress: 0.25}
	got := progressLine(st, 2*time.Second)
	if want := "running   parts 10/40  25%  5.0 parts/s  ETA 6s  2s"; got != want {
		t.Errorf("progress %q, want %q", got, want)
	}
	// The running parts reported progress of their own: 20 of 40 parts'
	// worth is done after 2 s, the rest takes as long.
	st.Progress = 0.5
	got = progressLine(st, 2*time.Second)
	if want := "running   parts 10/40  50%  5.0 parts/s  ETA 2s  2s"; got != want {
		t.Errorf("progress %q, want %q", got, want)
	}
	st = jobs.Status{State: jobs.Pending, Waiting: "no quorum: 2 of 5 voters reachable (node-1, node-2), a majority is 3"}
	got = progressLine(st, 1500*time.Millisecond)
	if want := "pending   parts 0/0  1.5s  (no quorum: 2 of 5 voters reachable (node-1, node-2), a majority is 3)"; got != want {
		t.Errorf("progress %q, want %q", got, want)
	}
}

// job submit --wait prints a line when the job starts or stops waiting
// (and why), not only when parts finish.
func TestProgressSaysWhyAJobWaits(t *testing.T) {
	steps := []jobs.Status{
		{State: jobs.Pending},
		{State: jobs.Pending, Waiting: "waiting for a leader"},
		{State: jobs.Pending, Waiting: "waiting for a leader"}, // no change: no line
		{State: jobs.Pending, Waiting: "no quorum: 2 of 5 voters reachable (node-1, node-2), a majority is 3"},
		{State: jobs.Pending}, // a leader again
		{State: jobs.Running, PartsTotal: 4},
		{State: jobs.Running, PartsTotal: 4, PartsDone: 2, Progress: 0.5},
		{State: jobs.Running, PartsTotal: 4, PartsDone: 2, Progress: 0.625}, // parts report progress
		{State: jobs.Succeeded, PartsTotal: 4, PartsDone: 4, Progress: 1},
	}
	run := func(tty bool) string {
		var b strings.Builder
		pr := &progress{w: &b, tty: tty, done: -1}
		for i, st := range steps {
			pr.show(st, time.Duration(i)*time.Second)
		}
		return b.String()
	}
	want := strings.Join([]string{
		"pending   parts 0/0  0s",
		"pending   parts 0/0  1s  (waiting for a leader)",
		"pending   parts 0/0  3s  (no quorum: 2 of 5 voters reachable (node-1, node-2), a majority is 3)",
		"pending   parts 0/0  4s",
		"running   parts 0/4  0%  5s",
		"running   parts 2/4  50%  0.3 parts/s  ETA 6s  6s",
		"running   parts 2/4  62%  0.3 parts/s  ETA 4.2s  7s",
		"succeeded parts 4/4  100%  0.5 parts/s  8s",
		""}, "\n")
	if got := run(false); got != want {
		t.Errorf("progress lines:\n%s\nwant\n%s", got, want)
	}
	// On a terminal the line is rewritten in place; the ones that say why
	// the job waits stay.
	wantTTY := "\r\033[Kpending   parts 0/0  0s" +
		"\r\033[Kpending   parts 0/0  1s  (waiting for a leader)\n" +
		"\r\033[Kpending   parts 0/0  3s  (no quorum: 2 of 5 voters reachable (node-1, node-2), a majority is 3)\n" +
		"\r\033[Kpending   parts 0/0  4s" +
		"\r\033[Krunning   parts 0/4  0%  5s" +
		"\r\033[Krunning   parts 2/4  50%  0.3 parts/s  ETA 6s  6s" +
		"\r\033[Krunning   parts 2/4  62%  0.3 parts/s  ETA 4.2s  7s" +
		"\r\033[Ksucceeded parts 4/4  100%  0.5 parts/s  8s\n"
	if got := run(true); got != wantTTY {
		t.Errorf("progress on a terminal:\n%q\nwant\n%q", got, wantTTY)
	}
}

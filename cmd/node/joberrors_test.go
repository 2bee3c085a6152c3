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

// cli2 runs the node command with args and returns its stdout and stderr
// apart.
func cli2(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := rootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

// `job status` and `job list` through a node that is not the jobs'
// contact: the status is the contact's, with the traceback on stderr; the
// list holds every member's jobs, one line each.
func TestJobStatusAndListThroughAnotherNode(t *testing.T) {
	cfg := jobs.DefaultConfig()
	cfg.Slots = 1
	c := jobstest.NewCluster(t, 3, cfg)
	srv := httptest.NewServer(api.New(c.Node("node-2"), api.Config{}))
	defer srv.Close()
	// merge fails with a message of several lines.
	bad := "def split(i, n):\n    return [1, 2]\ndef run(p):\n    return p\ndef merge(r):\n    fail(\"line one\\nline two\\tand\\x1b[2J more\")\n"
	var ids []string
	for _, n := range []actors.NodeName{"node-1", "node-3"} {
		sub, err := actors.Call(context.Background(), c.Node(n), jobs.Name, jobs.Submit{Script: bad, Name: "bad.star"})
		if err != nil {
			t.Fatal(err)
		}
		jobstest.Await(t, c.Node(n), sub.ID, 20*time.Second)
		ids = append(ids, sub.ID)
	}
	out, errOut, err := cli2(t, "job", "status", "--node", srv.URL, ids[0])
	var st jobs.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.ID != ids[0] || st.State != jobs.Failed || st.Contact != "node-1" {
		t.Fatalf("status through node-2: %v\n%s", err, out)
	}
	if !strings.HasPrefix(st.Error, "merge: ") || !strings.Contains(st.Error, "bad.star:6:9: in merge") || !strings.Contains(errOut, "Traceback") {
		t.Errorf("status through node-2: error %q, stderr:\n%s\nwant the phase, the file and line, and the traceback on stderr", st.Error, errOut)
	}

	out, errOut, err = cli2(t, "job", "list", "--node", srv.URL)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if err != nil || len(lines) != 3 || errOut != "" {
		t.Fatalf("list through node-2: %v; want a header and one line per job, nothing on stderr:\n%s\nstderr: %s", err, out, errOut)
	}
	for i, id := range []string{ids[1], ids[0]} { // newest first
		if l := lines[i+1]; !strings.HasPrefix(l, id+" ") || !strings.Contains(l, "bad.star") || !strings.Contains(l, "failed") || !strings.Contains(l, "merge: ") {
			t.Errorf("list line %d: %q; want job %s, bad.star, failed, its error", i+1, l, id)
		}
	}

	c.Hub.Block("node-3", "node-2")
	defer c.Hub.Heal()
	short := httptest.NewServer(api.New(c.Node("node-2"), api.Config{Timeout: time.Second}))
	defer short.Close()
	out, errOut, err = cli2(t, "job", "list", "--node", short.URL)
	if err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(errOut, "partial list: node-3 did not answer") {
		t.Errorf("list with node-3 silent: %v\n%s\nstderr: %s; want node-1's job and node-3 named missing", err, out, errOut)
	}
}

func TestCellIsOneLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"one line", "one line"},
		{"first\nsecond", "first…"},
		{"tab\there\x1b[2J\r", "tab here [2J "},
		{strings.Repeat("é", 25), strings.Repeat("é", 19) + "…"},
		{"bad\xff", "bad\uFFFD"},
	} {
		if got := cell(tc.in, 20); got != tc.want {
			t.Errorf("cell(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestScriptNameIsWhatANodeAccepts(t *testing.T) {
	long := strings.Repeat("d/", 200) + "cpu.star"
	for _, tc := range []struct{ in, want string }{
		{"examples/jobs/cpu.star", "examples/jobs/cpu.star"},
		{"a\nb\x1b.star", "a?b?.star"},
		{long, "cpu.star"},
		{strings.Repeat("x", 300), strings.Repeat("x", jobs.MaxNameBytes)},
	} {
		if got := scriptName(tc.in); got != tc.want {
			t.Errorf("scriptName(%.30q) = %.30q, want %.30q", tc.in, got, tc.want)
		}
	}
	// What the CLI sends, a node accepts: submit a script whose path has
	// a newline.
	c := jobstest.NewCluster(t, 1, jobs.DefaultConfig())
	srv := httptest.NewServer(api.New(c.Node("node-1"), api.Config{}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "odd\nname.star")
	if err := os.WriteFile(path, []byte("def split(i, n):\n    return [1]\ndef run(p):\n    return p\ndef merge(r):\n    return r[3]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := cli2(t, "job", "submit", "--node", srv.URL, path, "--wait")
	if err == nil || !strings.Contains(err.Error(), "odd?name.star:6:13: in merge") {
		t.Errorf("submit of %q: %v; want a failure naming odd?name.star", path, err)
	}
}

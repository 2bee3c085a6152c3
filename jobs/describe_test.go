package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/jobs"
)

// Each way a job fails says, on one line, the phase, the submitted file
// and its line, and what to do; the traceback is kept apart.
func TestJobErrorsSayWhereAndWhatToDo(t *testing.T) {
	rt, err := jobs.Starlark(jobs.StarlarkConfig{Limits: jobs.Limits{MaxSteps: 100_000, Timeout: 10 * time.Second, MaxResultBytes: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, 3, jobsCfg(t, func(cfg *jobs.Config) { cfg.Runtimes = []jobs.Runtime{rt} }))
	n := c.Node("node-1")
	const (
		split = "def split(input, n):\n    return [1, 2, 3]\n"
		run   = "def run(part):\n    return part\n"
		merge = "def merge(rs):\n    return rs\n"
		cpu   = "def split(input, n):\n    limit = input[\"limit\"]\n    return [limit]\n" + run + merge
	)
	for _, tc := range []struct {
		name, script, input string
		says                []string // in Error
		trace               []string // in Traceback; nil: no traceback
	}{
		{"syntax error", "def split(input, n):\n    return [1]\ndef run(part)\n    return 1\n", `null`,
			[]string{"load: ", "cpu.star:4:1: ", "want ':'"}, nil},
		{"missing function", split + run, `null`,
			[]string{"load: ", "cpu.star: the script does not define merge()"}, nil},
		{"split fails", "def split(input, n):\n    return [1 // 0]\n" + run + merge, `null`,
			[]string{"split: ", "cpu.star:2:15: in split: ", "division by zero"}, []string{"Traceback", "cpu.star:2:15: in split"}},
		{"run part 2 fails", split + "def run(part):\n    if part == 3:\n        fail(\"no three\")\n    return part\n" + merge, `null`,
			[]string{"run part 2 on node-", "cpu.star:5:13: in run: ", "no three"}, []string{"Traceback", "cpu.star:5:13: in run"}},
		{"merge fails", split + run + "def merge(rs):\n    return rs[5]\n", `null`,
			[]string{"merge: ", "cpu.star:6:14: in merge: ", "out of range"}, []string{"Traceback", "in merge"}},
		{"missing input", cpu, ``,
			[]string{"split: ", "cpu.star:2:18: in split", "NoneType", "the job has no input", "job submit --input"}, []string{"Traceback"}},
		{"mistyped input", cpu, `[1, 2]`,
			[]string{"split: ", "cpu.star:2:18", "got a list as input", "job submit --input"}, []string{"Traceback"}},
		{"step limit in a part", split + "def run(part):\n    while True:\n        pass\n" + merge, `null`,
			[]string{"run part ", "step limit exceeded", "100000 steps at cpu.star:", "in run", "jobs.max_steps", "--max-steps", "job submit --parts"}, nil},
		{"step limit in split", "def split(input, n):\n    while True:\n        pass\n" + run + merge, `null`,
			[]string{"split: ", "step limit exceeded", "jobs.max_steps", "--max-steps"}, nil},
		{"result too large", split + "def run(part):\n    return \"x\" * 5000\n" + merge, `null`,
			[]string{"run part ", "result too large", "jobs.max_result_bytes"}, nil},
		{"control characters from the script", split + run + "def merge(rs):\n    fail(\"a\\x1b[31mred\\rline\\nand more\")\n", `null`,
			[]string{"merge: ", "a [31mred line and more"}, []string{"Traceback"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := actors.Call(context.Background(), n, jobs.Name, jobs.Submit{Name: "cpu.star", Script: tc.script, Input: json.RawMessage(tc.input)})
			if err != nil {
				t.Fatal(err)
			}
			st := await(t, n, s.ID, 20*time.Second)
			if st.State != jobs.Failed {
				t.Fatalf("job %s, want failed: %+v", st.State, st)
			}
			if strings.ContainsFunc(st.Error, func(r rune) bool { return r < ' ' }) {
				t.Errorf("error %q is not one clean line", st.Error)
			}
			if strings.Contains(st.Error+st.Traceback, "job.star") {
				t.Errorf("error %q, traceback %q name job.star, not cpu.star", st.Error, st.Traceback)
			}
			for _, s := range tc.says {
				if !strings.Contains(st.Error, s) {
					t.Errorf("error %q does not say %q", st.Error, s)
				}
			}
			if tc.trace == nil && st.Traceback != "" {
				t.Errorf("traceback %q; want none", st.Traceback)
			}
			for _, s := range tc.trace {
				if !strings.Contains(st.Traceback, s) {
					t.Errorf("traceback %q does not say %q", st.Traceback, s)
				}
			}
			if st.Name != "cpu.star" {
				t.Errorf("name %q, want cpu.star", st.Name)
			}
			list, err := actors.Call(context.Background(), n, jobs.Name, jobs.ListRequest{})
			if err != nil || len(list) == 0 || list[0].ID != s.ID || list[0].Error != st.Error || list[0].Traceback != "" {
				t.Errorf("list: %v; want the job first, with its one-line error and no traceback", err)
			}
		})
	}
}

// A script's name is shown in errors, tables and logs: one too long or
// with control characters is refused.
func TestSubmitRefusesBadNames(t *testing.T) {
	c := newCluster(t, 1, jobsCfg(t, nil))
	for _, name := range []string{strings.Repeat("a", jobs.MaxNameBytes+1), "a\nb.star", "\x1b[2Jx.star", "bad\xffutf8", "rtl\u202eraw.star"} {
		_, err := actors.Call(context.Background(), c.Node("node-1"), jobs.Name, jobs.Submit{Name: name, Script: "x"})
		if !errors.Is(err, jobs.ErrInvalidJob) || !strings.Contains(err.Error(), "name") {
			t.Errorf("name %.40q: %v; want ErrInvalidJob naming the name", name, err)
		}
	}
}

package jobs_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/jobs"
)

func execRT(t *testing.T, lim jobs.Limits) jobs.Runtime {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	rt, err := jobs.Exec(jobs.ExecConfig{Limits: lim, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func TestExecRunsAJobThroughStdinAndStdout(t *testing.T) {
	rt := execRT(t, jobs.Limits{})
	out, err := jobs.RunLocal(context.Background(), rt, readScript(t, "squares.py"), []byte(`[1,2,3,4,5]`), 2)
	if err != nil || string(out) != `{"sum": 55}` {
		t.Fatalf("output %s, %v; want sum 55", out, err)
	}
	_, err = jobs.RunLocal(context.Background(), rt, readScript(t, "squares.py"), []byte(`[13]`), 1)
	if !errors.Is(err, jobs.ErrScript) || !strings.Contains(err.Error(), "unlucky part") {
		t.Errorf("a failing part: %v, want ErrScript with its stderr", err)
	}
}

func TestExecKillsAPartAtTheTimeLimit(t *testing.T) {
	rt := execRT(t, jobs.Limits{MaxSteps: 1, Timeout: 200 * time.Millisecond, MaxResultBytes: 100})
	prog, err := rt.Load(context.Background(), []byte("import time\ntime.sleep(30)\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	start := time.Now()
	_, err = prog.Run(context.Background(), []byte(`1`))
	if !errors.Is(err, jobs.ErrTimeLimit) || time.Since(start) > 15*time.Second { // unkilled, it sleeps 30 s
		t.Fatalf("error %v after %v, want ErrTimeLimit soon after 200ms", err, time.Since(start))
	}
}

func TestExecOnlyWhenEnabled(t *testing.T) {
	rt := execRT(t, jobs.Limits{})
	c := newCluster(t, 2, jobsCfg(t, func(cfg *jobs.Config) {
		star, _ := jobs.Starlark(jobs.StarlarkConfig{})
		cfg.Runtimes, cfg.Disabled = []jobs.Runtime{star, rt}, []string{}
	}))
	id := submit2(t, c.Node("node-1"), "exec", readScript(t, "squares.py"), `[1,2,3,4,5,6]`, 3)
	st := await(t, c.Node("node-1"), id, 20*time.Second)
	mustSucceed(t, st, `{"sum": 91}`)
}

// The interpreter does not see the node's configuration in its
// environment (an API token set as TROUPE_API_TOKEN, say).
func TestExecHidesTheNodesVariables(t *testing.T) {
	t.Setenv("TROUPE_API_TOKEN", "secret")
	rt := execRT(t, jobs.Limits{})
	script := "import json, os, sys\nreq = json.load(sys.stdin)\n" +
		"if req['op'] == 'split':\n    print(json.dumps([0]))\n" +
		"elif req['op'] == 'run':\n    print(json.dumps(sorted(k for k in os.environ if k.startswith('TROUPE_'))))\n" +
		"else:\n    print(json.dumps(req['results'][0]))\n"
	out, err := jobs.RunLocal(context.Background(), rt, []byte(script), []byte(`null`), 1)
	if err != nil || string(out) != `[]` {
		t.Fatalf("the interpreter saw %s (%v); want no TROUPE_ variables", out, err)
	}
}

// A relative directory (node run --data-dir data) works: the script is
// written under it and run by its absolute path, not by a path relative
// to the directory the interpreter runs in (which doubled it:
// data/data/job-….script).
func TestExecWithARelativeDir(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	script := readScript(t, "squares.py")
	t.Chdir(t.TempDir())
	if err := os.Mkdir("data", 0o700); err != nil {
		t.Fatal(err)
	}
	rt, err := jobs.Exec(jobs.ExecConfig{Dir: "data"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := jobs.RunLocal(context.Background(), rt, script, []byte(`[1,2,3,4,5]`), 2)
	if err != nil || string(out) != `{"sum": 55}` {
		t.Fatalf("with --data-dir data: output %s, %v; want sum 55", out, err)
	}
	left, _ := filepath.Glob("data/job-*.script")
	if len(left) != 0 {
		t.Errorf("scripts left in the data dir after the job: %v", left)
	}
}

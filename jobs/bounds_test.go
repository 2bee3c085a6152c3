package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/jobs"
)

// bounded is a Starlark runtime with small limits, as a test can afford
// them; it stops its processes when the test ends.
func bounded(t *testing.T, lim jobs.Limits) jobs.Runtime {
	t.Helper()
	if lim.MaxSteps == 0 {
		lim.MaxSteps = 100_000_000
	}
	if lim.Timeout == 0 {
		lim.Timeout = 10 * time.Second
	}
	if lim.MaxResultBytes == 0 {
		lim.MaxResultBytes = 1 << 20
	}
	rt := starlarkRT(t, jobs.StarlarkConfig{Limits: lim})
	t.Cleanup(func() { _ = rt.(interface{ Close() error }).Close() })
	return rt
}

// mustFail checks that err is `is` and says every one of says.
func mustFail(t *testing.T, err error, is error, says ...string) {
	t.Helper()
	if !errors.Is(err, is) {
		t.Fatalf("error %v, want %v", err, is)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

// json.decode of a deeply nested text used to recurse once per level and
// overflow the Go stack: a fatal error no recover stops, the node gone.
func TestStarlarkJSONDecodeStackBomb(t *testing.T) {
	rt := bounded(t, jobs.Limits{})
	err := failing(t, rt, "    return json.decode('[' * 50000000)\n")
	mustFail(t, err, jobs.ErrScript, "depth limit exceeded", "1000 levels", "jobs.max_depth")
	err = failing(t, rt, "    x = []\n    for i in range(100000):\n        x = [x]\n    return len(json.encode(x))\n")
	mustFail(t, err, jobs.ErrScript, "depth limit exceeded", "jobs.max_depth")
	// Depths within the limit still work, and brackets in strings do not
	// count.
	out, err := jobs.RunLocal(context.Background(), rt, []byte("def split(i, n):\n    return [i]\ndef run(p):\n    return json.decode(json.encode(p))\ndef merge(r):\n    return r[0]\n"),
		[]byte(`{"a": [[["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]]]}`), 1)
	if err != nil || !strings.HasPrefix(string(out), `{"a":[[["[[[[[[[[[[`) {
		t.Fatalf("a shallow document: %s, %v", out, err)
	}
}

// A result nested 250000 deep used to take the recursive encoder 12–38 s,
// past the timeout, and the job succeeded. The encoder now stops at the
// depth limit; 20000 levels are plenty to pass it, and building them stays
// well within the timeout under the race detector on a loaded host (a
// 250000-deep build took it past a 1 s timeout there).
func TestStarlarkDeepResultFailsAtTheDepthLimit(t *testing.T) {
	rt := bounded(t, jobs.Limits{Timeout: time.Minute})
	err := failing(t, rt, "    x = []\n    for i in range(20000):\n        x = [x]\n    return x\n")
	mustFail(t, err, jobs.ErrDepthLimit, "the value nests deeper than 1000 levels", "jobs.max_depth")
}

// Appending half a GiB a hundred times used to run the node out of
// memory. Now the script's process has a budget and the call fails.
func TestStarlarkMemoryBombFailsTheCallNotTheProcess(t *testing.T) {
	rt := bounded(t, jobs.Limits{MaxMemory: 64 << 20})
	err := failing(t, rt, "    l = []\n    for i in range(100):\n        l.append('x' * (1 << 29))\n    return len(l)\n")
	mustFail(t, err, jobs.ErrMemoryLimit, "run used more than the memory budget of 64 MiB (jobs.max_memory)")
	// One huge allocation, at the top level this time.
	_, err = rt.Load(context.Background(), []byte("x = 'x' * (1 << 29)\ndef split(i, n):\n    return []\ndef run(p):\n    return p\ndef merge(r):\n    return r\n"))
	mustFail(t, err, jobs.ErrMemoryLimit, "load used more than the memory budget of 64 MiB")
	// The runtime goes on with a fresh process.
	if out, err := jobs.RunLocal(context.Background(), rt, readScript(t, "squares.star"), []byte(`{"numbers": [1,2,3], "spin": 1}`), 2); err != nil || !strings.Contains(string(out), `"sum":14`) {
		t.Fatalf("after the bomb: %s, %v", out, err)
	}
}

// A Go stack overflow outside json (str of a deep list) kills only the
// script's process.
func TestStarlarkStackOverflowFailsTheCall(t *testing.T) {
	// 256 MiB: a 16 MiB stack. Under 128 MiB the address-space cap
	// sometimes stopped the process before the stack did (1 run in about
	// 100), a memory limit, not the failure tested.
	rt := bounded(t, jobs.Limits{MaxMemory: 256 << 20, Timeout: time.Minute}) // about 6 s under the race detector; more under load
	err := failing(t, rt, "    x = []\n    for i in range(100000):\n        x = [x]\n    return len(str(x))\n")
	mustFail(t, err, jobs.ErrStackLimit, "run overflowed its stack")
}

// A single builtin call that runs for long (inserting keys that all
// collide: quadratic, and no step is counted) used to hold its part far
// past the timeout; the thread's cancellation is only seen between steps.
func TestStarlarkBuiltinPastTheTimeoutIsKilled(t *testing.T) {
	rt := bounded(t, jobs.Limits{Timeout: 2 * time.Second})
	start := time.Now()
	// About 20 s in dict() (every key lands in one bucket), after a
	// list that takes 40 ms to build (0.4 s under the race detector).
	err := failing(t, rt, "    return len(dict([(i << 24, 0) for i in range(60000)]))\n")
	took := time.Since(start)
	mustFail(t, err, jobs.ErrTimeLimit, "run ran past 2s (jobs.part_timeout) and did not stop; its process was killed")
	if took > 15*time.Second { // not a timing: unkilled, the call runs 20 s, minutes under load
		t.Errorf("the call ended %v after it started; the timeout is 2s", took)
	}
}

// A part that exhausts its worker's process is run once more, on another
// worker; the second time the job fails naming the part and the cause, and
// no node runs it again. No node dies.
func TestPoisonPartFailsTheJobAfterTwoTries(t *testing.T) {
	// 256 MiB, not 64: under load a 64 MiB address space was too small
	// for the child's own threads, and the split (not the poison part)
	// failed once ("failed to create new OS thread"). The poison part
	// asks for 512 MiB at once.
	rt := bounded(t, jobs.Limits{MaxMemory: 256 << 20})
	// No backups: a backup copy started before the first strike would be
	// a third run, concurrent with the second.
	c := newCluster(t, 3, jobsCfg(t, func(cfg *jobs.Config) { cfg.Runtimes, cfg.Backup = []jobs.Runtime{rt}, -1 }))
	src := "def split(i, n):\n    return [0, 1, 2]\ndef run(p):\n    if p == 1:\n        l = []\n        for i in range(100):\n            l.append('x' * (1 << 29))\n    return p\ndef merge(r):\n    return r\n"
	st := await(t, c.Node("node-1"), submit(t, c.Node("node-1"), []byte(src), `null`, 0), 30*time.Second)
	if st.State != jobs.Failed {
		t.Fatalf("job %s, want failed: %+v", st.State, st)
	}
	for _, s := range []string{"poison part", "part 1:", "memory budget of 256 MiB (jobs.max_memory)", "not run again"} {
		if !strings.Contains(st.Error, s) {
			t.Errorf("error %q does not say %q", st.Error, s)
		}
	}
	// Nothing of the job runs on after it failed.
	awaitIdle(t, c, c.Names(), 10*time.Second)
	var exhausted, strikes, poisoned int64
	for _, n := range c.Nodes() {
		s := stats(t, n)
		exhausted += s.Exhausted
		strikes += s.Strikes
		poisoned += s.Poisoned
	}
	// Two runs, two strikes. (On a loaded machine a false failure
	// detection can start a third copy before the second strike; its
	// report comes after the job failed.)
	if exhausted < 2 || strikes != 2 || poisoned != 1 {
		dump(t, c)
		t.Errorf("the part exhausted %d processes, the leader counted %d strikes and poisoned %d parts; want 2, 2 and 1", exhausted, strikes, poisoned)
	}
	if len(c.Nodes()) != 3 {
		t.Errorf("%d nodes run, want 3", len(c.Nodes()))
	}
	// The cluster still runs jobs.
	mustSucceed(t, await(t, c.Node("node-2"), submit(t, c.Node("node-2"), readScript(t, "squares.star"), squaresInput(6, 1), 3), 30*time.Second),
		reference(t, readScript(t, "squares.star"), squaresInput(6, 1), 3))
}

// A deterministic script error still fails the job at once: one run.
func TestScriptErrorFailsTheJobAtOnce(t *testing.T) {
	c := newCluster(t, 3, jobsCfg(t, nil))
	src := "def split(i, n):\n    return [0, 1, 2]\ndef run(p):\n    return 1 // (p - 1)\ndef merge(r):\n    return r\n"
	st := await(t, c.Node("node-1"), submit(t, c.Node("node-1"), []byte(src), `null`, 0), 30*time.Second)
	if st.State != jobs.Failed || !strings.Contains(st.Error, "division by zero") || strings.Contains(st.Error, "poison") {
		t.Fatalf("job %s: %q; want failed by the division by zero", st.State, st.Error)
	}
}

// The exec runtime kills the interpreter's whole process group at the
// timeout: a process the script started does not outlive the part.
func TestExecKillsTheProcessGroupAtTheTimeLimit(t *testing.T) {
	dir := t.TempDir()
	rt := execRT(t, jobs.Limits{MaxSteps: 1, Timeout: 3 * time.Second, MaxResultBytes: 100})
	pidFile := filepath.Join(dir, "grandchild.pid")
	prog, err := rt.Load(context.Background(), []byte("import subprocess, time\np = subprocess.Popen(['sleep', '60'])\nwith open("+strconv.Quote(pidFile)+", 'w') as f:\n    f.write(str(p.pid))\ntime.sleep(60)\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	_, err = prog.Run(context.Background(), []byte(`1`))
	mustFail(t, err, jobs.ErrTimeLimit, "3s", "jobs.part_timeout")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the script did not start its grandchild: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := actortest.WaitFor(5*time.Second, func() bool { return !alive(pid) }); err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("the script's grandchild %d still runs after the part was killed", pid)
	}
}

// alive reports whether process pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// The exec runtime caps the interpreter's memory.
func TestExecMemoryBudget(t *testing.T) {
	rt := execRT(t, jobs.Limits{MaxSteps: 1, Timeout: 10 * time.Second, MaxResultBytes: 100, MaxMemory: 64 << 20})
	prog, err := rt.Load(context.Background(), []byte("import json, sys\nx = 'x' * (1 << 30)\nprint(json.dumps(len(x)))\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	_, err = prog.Run(context.Background(), []byte(`1`))
	mustFail(t, err, jobs.ErrMemoryLimit, "run used more than the memory budget of 64 MiB (jobs.max_memory)", "MemoryError")
}

// BenchmarkStarlarkPart is the cost of one trivial part, in this process
// and in a script process (a round trip over pipes); "cold" starts a
// process for each part and loads the script in it.
func BenchmarkStarlarkPart(b *testing.B) {
	src := []byte("def split(i, n):\n    return []\ndef run(p):\n    return p + 1\ndef merge(r):\n    return r\n")
	for _, mode := range []struct {
		name      string
		inProcess bool
	}{{"in-process", true}, {"process", false}} {
		b.Run(mode.name, func(b *testing.B) {
			rt, err := jobs.Starlark(jobs.StarlarkConfig{InProcess: mode.inProcess})
			if err != nil {
				b.Fatal(err)
			}
			if c, ok := rt.(interface{ Close() error }); ok {
				defer c.Close()
			}
			prog, err := rt.Load(context.Background(), src)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := prog.Run(context.Background(), []byte("1")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("process-cold", func(b *testing.B) {
		for b.Loop() {
			rt, err := jobs.Starlark(jobs.StarlarkConfig{})
			if err != nil {
				b.Fatal(err)
			}
			prog, err := rt.Load(context.Background(), src)
			if err == nil {
				_, err = prog.Run(context.Background(), []byte("1"))
			}
			_ = rt.(interface{ Close() error }).Close()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A worker node that dies with a part in hand, and comes back as a new
// incarnation, gives the part a strike: two such deaths make it a poison
// part. (A part that kills its node outright — the kernel's OOM killer,
// a fault in the runtime itself — does not loop through the cluster.)
func TestWorkerDeathsWithAPartPoisonIt(t *testing.T) {
	cfg := longCfg(t)
	cfg.Backup = -1
	c := newCluster(t, 4, cfg)
	id := submit(t, c.Node("node-3"), []byte(longJob), `null`, 1)
	// runner waits until a live node other than those in not runs the
	// part, and names it.
	runner := func(not ...actors.NodeName) actors.NodeName {
		t.Helper()
		var who actors.NodeName
		actortest.Eventually(t, failover, "a node runs the part", func() bool {
			for _, n := range c.Nodes() {
				if n != nil && !slices.Contains(not, n.Name()) && stats(t, n).Running > 0 {
					who = n.Name()
					return true
				}
			}
			return false
		})
		return who
	}
	strikes := func(want int64) {
		t.Helper()
		actortest.Eventually(t, failover, fmt.Sprintf("the leader counts %d strikes", want), func() bool {
			return stats(t, c.Node("node-4")).Strikes == want
		})
	}
	first := runner()
	if first == "node-3" || first == "node-4" {
		t.Skipf("the part went to %s, the contact or the leader", first)
	}
	if err := c.Crash(first); err != nil {
		t.Fatal(err)
	}
	second := runner(first) // the leader saw the failure and moved the part
	if second == "node-3" || second == "node-4" {
		t.Skipf("the part went to %s, the contact or the leader", second)
	}
	if _, err := c.Restart(first); err != nil {
		t.Fatal(err)
	}
	strikes(1)
	if err := c.Crash(second); err != nil {
		t.Fatal(err)
	}
	runner(first, second)
	if _, err := c.Restart(second); err != nil {
		t.Fatal(err)
	}
	st := await(t, c.Node("node-3"), id, failover)
	if st.State != jobs.Failed || !strings.Contains(st.Error, "run part 0: jobs: poison part: the node died while it held the part") {
		t.Fatalf("job %s: %q; want failed as a poison part", st.State, st.Error)
	}
	awaitIdle(t, c, []actors.NodeName{"node-1", "node-2", "node-3", "node-4"}, failover)
}

// A node whose image has no writable temporary directory (the FROM
// scratch image has no /tmp) still runs scripts, and still tells why a
// script's process died: its standard error is a memory file.
func TestScriptsRunWithoutATemporaryDirectory(t *testing.T) {
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	rt := bounded(t, jobs.Limits{MaxMemory: 64 << 20})
	if out, err := jobs.RunLocal(context.Background(), rt, readScript(t, "squares.star"), []byte(`{"numbers": [1,2,3], "spin": 1}`), 2); err != nil || !strings.Contains(string(out), `"sum":14`) {
		t.Fatalf("without a temporary directory: %s, %v", out, err)
	}
	err := failing(t, rt, "    l = []\n    for i in range(100):\n        l.append('x' * (1 << 29))\n    return len(l)\n")
	mustFail(t, err, jobs.ErrMemoryLimit, "run used more than the memory budget of 64 MiB (jobs.max_memory)")
}

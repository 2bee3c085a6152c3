package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/jobs"
	pb "github.com/troupe-dev/troupe/messages"
)

const progressScript = `
def split(input, n):
    return list(range(n))

def run(part):
    for i in range(4):
        progress(i / 4)
    progress(1)
    return part

def merge(results):
    progress(0.5)  # does nothing outside a part
    return len(results)
`

// recorder collects the progress a call reports.
type recorder struct {
	mu  sync.Mutex
	got []float64
}

func (r *recorder) ctx() context.Context {
	return jobs.WithProgress(context.Background(), func(f float64) {
		r.mu.Lock()
		r.got = append(r.got, f)
		r.mu.Unlock()
	})
}

func (r *recorder) values() []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]float64(nil), r.got...)
}

// progress(fraction) in a Starlark part reaches the caller's progress
// function, in process and from a script's process (whose frames are
// rate-limited: the last value may be dropped, never reordered); a value
// that is no fraction fails the part, saying what is valid.
func TestStarlarkProgress(t *testing.T) {
	for _, inProcess := range []bool{true, false} {
		t.Run(fmt.Sprintf("in_process=%v", inProcess), func(t *testing.T) {
			rt := starlarkRT(t, jobs.StarlarkConfig{InProcess: inProcess})
			prog, err := rt.Load(context.Background(), []byte(progressScript))
			if err != nil {
				t.Fatal(err)
			}
			defer prog.Close()
			var r recorder
			out, err := prog.Run(r.ctx(), []byte(`7`))
			if err != nil || string(out) != "7" {
				t.Fatalf("run: %s, %v", out, err)
			}
			got := r.values()
			if inProcess && fmt.Sprint(got) != "[0 0.25 0.5 0.75 1]" {
				t.Errorf("in process: reported %v, want [0 0.25 0.5 0.75 1]", got)
			}
			if len(got) == 0 || got[0] != 0 {
				t.Errorf("reported %v; want the first value, 0, at least", got)
			}
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Errorf("reported %v: out of order", got)
				}
			}
			if _, err := prog.Merge(r.ctx(), [][]byte{[]byte(`1`)}); err != nil {
				t.Errorf("progress() in merge: %v; want it to do nothing", err)
			}

			for _, bad := range []string{"1.5", "-1", `"half"`, "float('nan')"} {
				prog, err := rt.Load(context.Background(), []byte(strings.Replace(progressScript, "progress(1)", "progress("+bad+")", 1)))
				if err != nil {
					t.Fatal(err)
				}
				_, err = prog.Run(r.ctx(), []byte(`1`))
				if !errors.Is(err, jobs.ErrScript) || !strings.Contains(err.Error(), "from 0 (started) to 1 (done)") || !strings.Contains(err.Error(), "job.star:8") {
					t.Errorf("progress(%s): %v; want a script error at job.star:8 saying what is valid", bad, err)
				}
				prog.Close()
			}
		})
	}
}

// An exec part reports progress with lines on its standard error; a
// malformed line does not fail the part, and progress lines stay out of
// the error a failing part reports.
func TestExecProgress(t *testing.T) {
	rt := execRT(t, jobs.Limits{})
	script := "import json, sys\nreq = json.load(sys.stdin)\n" +
		"if req['op'] == 'run':\n" +
		"    for f in ('0.5', 'lots', '1'):\n        print('TROUPE_PROGRESS', f, file=sys.stderr, flush=True)\n" +
		"    if req['part'] == 13:\n        sys.exit('unlucky')\n" +
		"    print(json.dumps(req['part']))\n"
	prog, err := rt.Load(context.Background(), []byte(script))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	var r recorder
	out, err := prog.Run(r.ctx(), []byte(`3`))
	if err != nil || string(out) != "3" {
		t.Fatalf("run: %s, %v", out, err)
	}
	if got := r.values(); fmt.Sprint(got) != "[0.5 1]" {
		t.Errorf("reported %v, want [0.5 1] (the line with 'lots' ignored)", got)
	}
	_, err = prog.Run(r.ctx(), []byte(`13`))
	if !errors.Is(err, jobs.ErrScript) || !strings.HasSuffix(err.Error(), "unlucky") || strings.Contains(err.Error(), "TROUPE_PROGRESS") {
		t.Errorf("a failing part: %v; want its stderr without the progress lines", err)
	}
}

// gated is a runtime whose parts report progress 0.5 and then wait for
// the test to open their gate: their progress is seen while they run.
type gated struct {
	open    chan struct{}
	reports int // progress reports per part, all at once
}

func (g *gated) Name() string { return "gated" }
func (g *gated) Load(context.Context, []byte) (jobs.Program, error) {
	return g, nil
}
func (g *gated) Split(_ context.Context, _ []byte, n int) ([][]byte, error) {
	parts := make([][]byte, n)
	for i := range parts {
		parts[i] = []byte(fmt.Sprint(i))
	}
	return parts, nil
}
func (g *gated) Run(ctx context.Context, part []byte) ([]byte, error) {
	for i := 1; i <= g.reports; i++ {
		if err := jobs.ReportProgress(ctx, 0.5*float64(i)/float64(g.reports)); err != nil {
			return nil, err
		}
	}
	select {
	case <-g.open:
		return part, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
func (g *gated) Merge(_ context.Context, results [][]byte) ([]byte, error) {
	return json.Marshal(len(results))
}
func (g *gated) Close() error { return nil }

// Progress travels worker → contact and shows in the job's status, at
// the contact and through another node: three parts, one on each node,
// each at half way, make the job half done; the many reports of a part
// reach the contact coalesced; the job ends at 1.
func TestProgressShowsInTheJobsStatus(t *testing.T) {
	actortest.Virtual(t, testProgressShowsInTheJobsStatus)
}

func testProgressShowsInTheJobsStatus(t *testing.T) {
	g := &gated{open: make(chan struct{}), reports: 1000}
	c := newCluster(t, 3, jobsCfg(t, func(cfg *jobs.Config) {
		cfg.Runtimes, cfg.Prefetch, cfg.Backup = []jobs.Runtime{g}, -1, -1
	}))
	id := submit2(t, c.Node("node-1"), "gated", []byte("gated"), `null`, 3)
	var st jobs.Status
	actortest.Eventually(t, 10*time.Second, "the job at half way", func() bool {
		st = status(t, c.Node("node-1"), id)
		return st.Progress == 0.5
	})
	if st.State != jobs.Running || st.PartsDone != 0 {
		t.Errorf("half way: %+v", st)
	}
	other, err := jobs.JobStatus(context.Background(), c.Node("node-2"), id)
	if err != nil || other.Progress != 0.5 {
		t.Errorf("through node-2: progress %v, %v; want 0.5", other.Progress, err)
	}
	var sent int64
	for _, n := range c.Nodes() {
		sent += stats(t, n).ProgressSent
	}
	// Virtual time stands still while a part reports: its 1000 values are
	// one message, and perhaps one more on the next tick.
	if sent < 3 || sent > 6 {
		t.Errorf("3 parts reporting 1000 values each sent %d progress messages; want 3 to 6 (coalesced)", sent)
	}
	close(g.open)
	st = await(t, c.Node("node-1"), id, 10*time.Second)
	if st.State != jobs.Succeeded || st.Progress != 1 {
		t.Errorf("at the end: %s, progress %v; want succeeded, 1", st.State, st.Progress)
	}
}

// A contact takes part progress for display only and trusts no sender
// with more: values that are no fraction (NaN, infinite, negative, above
// 1), parts the job does not have and jobs it does not hold are dropped; a
// flood of repeats changes nothing. (A member may still move a running
// part's bar: docs/jobs.md, Limits.)
func TestForgedProgressIsDropped(t *testing.T) { actortest.Virtual(t, testForgedProgressIsDropped) }

func testForgedProgressIsDropped(t *testing.T) {
	g := &gated{open: make(chan struct{}), reports: 1}
	c, impostor := impostorCluster(t, func(cfg *jobs.Config) {
		cfg.Runtimes, cfg.Prefetch, cfg.Backup = []jobs.Runtime{g}, -1, -1
	})
	contact := c.Node("node-2")
	id := submit2(t, contact, "gated", []byte("gated"), `null`, 2)
	actortest.Eventually(t, 10*time.Second, "both parts half way", func() bool {
		return status(t, contact, id).Progress == 0.5
	})
	forge := func(m *pb.PartProgress) { impostor.Send(t, c.Node("node-1"), "node-2", m, true) }
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), -1, 2, 1.0000001} {
		forge(&pb.PartProgress{Id: id, Part: 0, Fraction: bad})
	}
	forge(&pb.PartProgress{Id: id, Part: 99, Fraction: 1})
	forge(&pb.PartProgress{Id: id, Part: math.MaxUint32, Fraction: 1})
	forge(&pb.PartProgress{Id: "node-2.x.1", Part: 0, Fraction: 1})
	forge(&pb.PartProgress{Id: "", Part: 0, Fraction: 1})
	for range 200 {
		forge(&pb.PartProgress{Id: id, Part: 1, Fraction: 0.25}) // below what it reported: the highest stays
	}
	// The last one, valid, is handled after the others (one reliable
	// stream, in order).
	forge(&pb.PartProgress{Id: id, Part: 0, Fraction: 0.9})
	var st jobs.Status
	actortest.Eventually(t, 10*time.Second, "the valid value counted", func() bool {
		st = status(t, contact, id)
		return math.Abs(st.Progress-0.7) < 1e-9
	})
	if st.State != jobs.Running || st.PartsDone != 0 {
		t.Errorf("after the forged progress: %+v", st)
	}
	close(g.open)
	st = await(t, contact, id, 10*time.Second)
	if st.State != jobs.Succeeded || st.Progress != 1 {
		t.Errorf("the job: %s, progress %v; want succeeded, 1", st.State, st.Progress)
	}
}

package telemetry_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/telemetry"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the dashboard test's screenshot to docs/dashboard.png")

// chromium finds a Chromium or Chrome binary, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("TROUPE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium to drive the dashboard with: none of chromium, chromium-browser, google-chrome, google-chrome-stable, headless-shell is on PATH " +
		"(Debian: apt-get install chromium; or set TROUPE_CHROMIUM to the binary)")
	return ""
}

// gate holds every http_get of a job part until the test lets it
// through. It lets parts through, not requests: a part that runs again
// (reassigned after SWIM, on a loaded host, took its worker for failed)
// passes if it passed before, so let(n) completes n distinct parts however
// often each one runs.
type gate struct {
	mu       sync.Mutex
	budget   int             // parts still to let through
	released map[string]bool // parts let through, by path
	changed  chan struct{}   // closed when budget grows
	done     chan struct{}
}

func newGate() *gate {
	return &gate{released: map[string]bool{}, changed: make(chan struct{}), done: make(chan struct{})}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for {
		g.mu.Lock()
		if !g.released[r.URL.Path] && g.budget > 0 {
			g.budget--
			g.released[r.URL.Path] = true
		}
		passed, changed := g.released[r.URL.Path], g.changed
		g.mu.Unlock()
		if passed {
			fmt.Fprint(w, "1")
			return
		}
		select {
		case <-changed:
		case <-g.done:
			http.Error(w, "closing", http.StatusServiceUnavailable)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// let lets n more parts through.
func (g *gate) let(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.budget += n
	close(g.changed)
	g.changed = make(chan struct{})
}

// gatedJob has parts parts, each waiting at the gate under its own path.
const gatedJob = `
def split(input, n):
    return [input["gate"] + "/part-" + str(i) for i in range(n)]
def run(url):
    return int(http_get(url))
def merge(results):
    return len(results)
`

// TestDashboardInChromium drives the dashboard of node-1 in headless
// Chromium: it shows the 3 members and the leader, a job's progress bar
// moves to 50% and 100%, a crashed node is marked failed, with an active
// alert, without a reload, and the alert is marked resolved when the node
// is back.
func TestDashboardInChromium(t *testing.T) {
	bin := chromium(t)

	g := newGate()
	gs := httptest.NewServer(g)
	t.Cleanup(gs.Close)
	t.Cleanup(func() { close(g.done) }) // before the cluster stops: parts end
	gu, _ := url.Parse(gs.URL)
	// A part waits at the gate for as long as the test takes to let it
	// through (a browser under the race detector is slow): neither the
	// fetch nor the call may time out first.
	lim := jobs.DefaultLimits()
	lim.Timeout = 5 * time.Minute
	star, err := jobs.Starlark(jobs.StarlarkConfig{HTTPAllow: []string{gu.Host}, HTTPTimeout: 5 * time.Minute, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	jcfg := jobs.DefaultConfig()
	jcfg.Runtimes, jcfg.Slots, jcfg.Backup = []jobs.Runtime{star}, 1, -1 // no backup copies
	cfg := testConfig(telemetry.NewLogBuffer(500))
	cfg.StatusInterval = 200 * time.Millisecond
	// The sim timing's 25 ms probe timeout takes members of a loaded host
	// for failed, and the page would show alerts the test did not cause.
	c := newJobsCluster(t, 3, cfg, jcfg, cluster.Membership(clustertest.SteadySimMembership()))

	base, stopStreams := context.WithCancel(context.Background())
	srv := httptest.NewUnstartedServer(api.New(c.Node("node-1"), api.Config{}))
	srv.Config.BaseContext = func(net.Listener) context.Context { return base } // ends the event streams on close
	srv.Start()
	t.Cleanup(func() { stopStreams(); srv.Close() })

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 1100))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()

	// waitFor polls a JavaScript condition in the page.
	waitFor := func(what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
			t.Fatalf("the dashboard never showed %s: %v\npage:\n%s", what, err, page)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatalf("opening the dashboard: %v", err)
	}
	// A mark that a reload would wipe.
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.loadedAt = performance.timeOrigin`))
	if err != nil {
		t.Fatal(err)
	}
	waitFor("3 alive members and leader node-3", `document.querySelectorAll('#members tr[data-state="alive"]').length === 3 &&
		document.querySelector('#leader').textContent === 'node-3' &&
		document.querySelector('#members tr[data-member="node-3"] .badge.leader') !== null`)

	input, _ := json.Marshal(map[string]string{"gate": gs.URL + "/job-1"})
	sub, err := actors.Call(ctx, c.Node("node-1"), jobs.Name, jobs.Submit{Script: gatedJob, Input: input, Parts: 6})
	if err != nil {
		t.Fatal(err)
	}
	job := fmt.Sprintf(`document.querySelector('[data-job=%q]')`, sub.ID)
	waitFor("the job at 0%", job+` !== null && `+job+`.dataset.progress === '0'`)
	g.let(3)
	waitFor("the job at 50%", job+`.dataset.progress === '50' && `+job+`.dataset.state === 'running'`)
	g.let(3)
	waitFor("the job at 100%", job+`.dataset.progress === '100' && `+job+`.dataset.state === 'succeeded' && `+
		job+`.querySelector('.fill').style.width === '100%'`)

	if err := c.Crash("node-2"); err != nil {
		t.Fatal(err)
	}
	waitFor("node-2 failed, with an alert", `document.querySelector('#members tr[data-member="node-2"]').dataset.state === 'failed' &&
		document.querySelector('#alerts li[data-kind="member_failed"][data-subject="node-2"][data-state="active"]') !== null &&
		document.querySelector('#alerts li').dataset.state === 'active'`)
	if still, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.loadedAt`)); err != nil || still != loaded {
		t.Fatalf("the page was reloaded (loaded at %v, now %v): %v", loaded, still, err)
	}

	// For the picture: a second job under way, and a few status intervals
	// of message rates.
	input, _ = json.Marshal(map[string]string{"gate": gs.URL + "/job-2"})
	sub2, err := actors.Call(ctx, c.Node("node-1"), jobs.Name, jobs.Submit{Script: gatedJob, Input: input, Parts: 8})
	if err != nil {
		t.Fatal(err)
	}
	g.let(3)
	job2 := fmt.Sprintf(`document.querySelector('[data-job=%q]')`, sub2.ID)
	waitFor("the second job at 38%", job2+` !== null && `+job2+`.dataset.progress === '38'`)
	waitFor("some rate points", `[...document.querySelectorAll('#rates polyline')].some(p => p.points.length >= 20)`)
	// node-1's page fetches node-3's logs.
	if err := chromedp.Do(ctx, chromedp.SetValue("#logs-node", "node-3"), chromedp.Click("#logs-form button")); err != nil {
		t.Fatal(err)
	}
	waitFor("node-3's logs", `document.querySelector('#logs-note').textContent.includes('lines from node-3') &&
		document.querySelector('#logs').textContent.includes('leader changed')`)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard.png")
	if *updateScreenshot {
		path = filepath.Join("..", "docs", "dashboard.png")
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))

	// node-2 comes back: its alert is marked resolved, with its end.
	if _, err := c.Restart("node-2"); err != nil {
		t.Fatal(err)
	}
	waitFor("node-2's alert resolved", `(() => {
		const li = document.querySelector('#alerts li[data-kind="member_failed"][data-subject="node-2"]');
		return li !== null && li.dataset.state === 'resolved' && li.querySelectorAll('time').length === 2 &&
			li.querySelector('.badge.resolved') !== null;
	})()`)
}

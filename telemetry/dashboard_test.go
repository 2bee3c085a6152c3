package telemetry_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/jobs/jobstest"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/mutex"
	"github.com/troupe-dev/troupe/telemetry"
)

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

// screenshots, when set, is the directory the dashboard test writes a
// screenshot of each panel to (docs/ holds those of a real run):
//
//	go test ./telemetry -run TestDashboardInChromium -args -screenshots=../docs
var screenshots = flag.String("screenshots", "", "write the dashboard test's screenshots (dashboard.png and dashboard-<panel>.png) to this directory")

// TestDashboardInChromium drives the dashboard of node-1 of a 3-node
// cluster (membership, Bully, jobs, a raft group on every node and
// telemetry) in headless Chromium. Live: the members and the leader show;
// the raft panel shows the three voters, one leader, the followers' lag and
// a healthy quorum; the charts draw a series per node; the channel table
// shows telemetry's stream traffic; the key browser
// finds keys by prefix and a held lock with its fencing token; a job's
// progress bar moves to 50% and 100%, then its result and parts per node
// show; a job whose running parts report progress(0.5) shows 50% before
// any part is done; a pending job is cancelled with its button; node-3's logs are
// followed and searched; a crashed node is marked failed with its figures
// blanked and an active alert (filtered), without a reload, and the alert
// is marked resolved when the node is back. Static (?static=1): the page
// settles, and each panel is photographed.
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
	cfg.HistoryStep = 200 * time.Millisecond
	cfg.HistoryPoints = 75 // 15 s: the charts' span, filled by the end of the test
	// The sim timing's 25 ms probe timeout takes members of a loaded host
	// for failed, and the page would show alerts the test did not cause.
	c := jobstest.NewCluster(t, 3, jcfg, cluster.Membership(clustertest.SteadySimMembership()),
		cluster.Logger(zerolog.New(cfg.Logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()))
	startRaft(t, c)
	startTelemetry(t, c, cfg)

	base, stopStreams := context.WithCancel(context.Background())
	srv := httptest.NewUnstartedServer(api.New(c.Node("node-1"), api.Config{}))
	srv.Config.BaseContext = func(net.Listener) context.Context { return base } // ends the event streams on close
	srv.Start()
	t.Cleanup(func() { stopStreams(); srv.Close() })

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 1000))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(browser, 3*time.Minute)
	defer cancel()

	// waitFor polls a JavaScript condition in the page of ctx.
	waitIn := func(ctx context.Context, what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
			t.Fatalf("the dashboard never showed %s: %v\npage:\n%s", what, err, page)
		}
	}
	waitFor := func(what, cond string) { t.Helper(); waitIn(ctx, what, cond) }
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
	// The members panel: a summary by state, who aggregates, a search by
	// name that pages the rows.
	waitFor("a summary of 3 alive members aggregated by node-3", `document.querySelector('#members-summary').textContent.includes('3 alive') &&
		document.querySelector('#members-summary').textContent.includes('aggregated by node-3')`)
	search := func(q string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const q = document.querySelector('#members-q'); q.value = `+
			strconv.Quote(q)+`; q.dispatchEvent(new Event('input')); return true })()`)); err != nil {
			t.Fatal(err)
		}
	}
	search("node-2")
	waitFor("one member row for the search node-2", `document.querySelectorAll('#members tbody tr').length === 1 &&
		document.querySelector('#members tr[data-member="node-2"]') !== null &&
		document.querySelector('#members-page').textContent.includes('1 shown of 3')`)
	search("")
	waitFor("3 member rows again", `document.querySelectorAll('#members tbody tr').length === 3`)

	// Raft: three voters, one leader whose followers' lag shows, a
	// healthy quorum.
	waitFor("the raft panel", `document.querySelector('#raft-quorum [data-quorum="healthy"]') !== null &&
		document.querySelectorAll('#raft tr[data-raft]').length === 3 &&
		document.querySelectorAll('#raft tr[data-role="StateLeader"]').length === 1 &&
		[...document.querySelectorAll('#raft td.lag')].filter(td => td.dataset.lag !== '').length === 2`)

	// Charts: a series per node, with axes.
	waitFor("charts of the 3 nodes", `['cpu', 'rss', 'goroutines', 'mailbox', 'msgs', 'timers'].every(id => {
		const paths = document.querySelectorAll('[data-chart="' + id + '"] path.series');
		return paths.length === 3 && [...paths].every(p => Number(p.dataset.points) >= 5) &&
			document.querySelectorAll('[data-chart="' + id + '"] text.ylab').length >= 2;
	})`)
	// The channel table: telemetry's statuses travel on the stream.
	waitFor("telemetry's stream traffic in the channel table", `(() => {
		const r = document.querySelector('#channels tr[data-protocol="telemetry"][data-channel="stream"]');
		return r !== null && r.cells.length === 7 && r.cells[2].textContent !== '0' && r.cells[3].textContent.endsWith('B');
	})()`)

	// Keys and locks, by prefix.
	kc, err := kv.NewClient(c.Node("node-1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"app/config", "app/owner", "app/replicas", "other/key"} {
		if _, err := kc.Put(ctx, k, []byte(`{"value of":"`+k+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	leases, err := mutex.NewLeases(c.Node("node-1"))
	if err != nil {
		t.Fatal(err)
	}
	lk, err := leases.Lock(ctx, mutex.LockRequest{Op: mutex.LockAcquire, Name: "app/leader-lock", Owner: "worker-7", TTL: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue("#kv-prefix", "app/"), chromedp.Click("#kv-form button[type=submit]")); err != nil {
		t.Fatal(err)
	}
	waitFor("the keys under app/ and the held lock", fmt.Sprintf(`document.querySelectorAll('#kv-keys tr[data-key]').length === 3 &&
		document.querySelector('#kv-keys tr[data-key="other/key"]') === null &&
		document.querySelector('#kv-locks tr[data-lock="app/leader-lock"] [data-token="%d"]') !== null &&
		document.querySelector('#kv-locks tr[data-lock="app/leader-lock"]').textContent.includes('worker-7')`, lk.Token))

	// A job: progress, then its result and parts per node.
	input, _ := json.Marshal(map[string]string{"gate": gs.URL + "/job-1"})
	sub, err := actors.Call(ctx, c.Node("node-1"), jobs.Name, jobs.Submit{Script: gatedJob, Input: input, Parts: 6})
	if err != nil {
		t.Fatal(err)
	}
	job := fmt.Sprintf(`document.querySelector('[data-job=%q]')`, sub.ID)
	waitFor("the job at 0%", job+` !== null && `+job+`.dataset.progress === '0' && `+job+`.querySelector('[data-cancel]') !== null`)
	g.let(3)
	waitFor("the job at 50% with an ETA", job+`.dataset.progress === '50' && `+job+`.dataset.state === 'running' && `+
		job+`.querySelector('[data-timing]').textContent.includes('ETA')`)
	g.let(3)
	waitFor("the job at 100% with its result", job+`.dataset.progress === '100' && `+job+`.dataset.state === 'succeeded' && `+
		job+`.querySelector('.fill').style.width === '100%' && `+job+`.querySelector('[data-result] code')?.textContent === '6' && `+
		job+`.querySelector('.per-node')?.textContent.includes('parts per node') && `+job+`.querySelector('[data-cancel]') === null`)

	// Cancel: a job whose parts never pass the gate.
	input, _ = json.Marshal(map[string]string{"gate": gs.URL + "/never"})
	stuck, err := actors.Call(ctx, c.Node("node-2"), jobs.Name, jobs.Submit{Script: gatedJob, Input: input, Parts: 2})
	if err != nil {
		t.Fatal(err)
	}
	stuckJob := fmt.Sprintf(`document.querySelector('[data-job=%q]')`, stuck.ID)
	waitFor("the stuck job's cancel button", stuckJob+` !== null && `+stuckJob+`.querySelector('[data-cancel]') !== null`)
	if err := chromedp.Do(ctx, chromedp.Click(fmt.Sprintf(`[data-cancel=%q]`, stuck.ID))); err != nil {
		t.Fatal(err)
	}
	waitFor("the stuck job cancelled", stuckJob+`.dataset.state === 'cancelled' && document.querySelector('#jobs-note').textContent.includes('cancelled')`)

	// Parts that report progress of their own: two parts half way make
	// the job half done before any part is.
	input, _ = json.Marshal(map[string]string{"gate": gs.URL + "/halfway"})
	half, err := actors.Call(ctx, c.Node("node-1"), jobs.Name, jobs.Submit{Script: strings.Replace(gatedJob, "    return int(", "    progress(0.5)\n    return int(", 1), Input: input, Parts: 2})
	if err != nil {
		t.Fatal(err)
	}
	halfJob := fmt.Sprintf(`document.querySelector('[data-job=%q]')`, half.ID)
	waitFor("the job whose parts are half way at 50%", halfJob+` !== null && `+halfJob+`.dataset.progress === '50' && `+
		halfJob+`.querySelector('[data-timing]').textContent.startsWith('0/2 parts')`)
	if _, err := jobs.CancelJob(ctx, c.Node("node-1"), half.ID, "seen half way"); err != nil {
		t.Fatal(err)
	}
	waitFor("the half-way job cancelled", halfJob+`.dataset.state === 'cancelled'`)

	// node-1's page follows node-3's logs, then searches them.
	if err := chromedp.Do(ctx, chromedp.SetValue("#logs-node", "node-3"), chromedp.Click("#logs-follow")); err != nil {
		t.Fatal(err)
	}
	waitFor("node-3's logs followed", `document.querySelector('#logs-note').dataset.following === 'node-3' &&
		document.querySelector('#logs').textContent.includes('leader changed')`)
	if err := chromedp.Do(ctx, chromedp.Click("#logs-follow"), chromedp.SetValue("#logs-search", "LEADER CHANGED"),
		chromedp.Click("#logs-form button[type=submit]")); err != nil {
		t.Fatal(err)
	}
	waitFor("node-3's logs searched", `document.querySelector('#logs-note').textContent.includes('lines from node-3') &&
		document.querySelector('#logs').textContent.split('\n').every(l => l.toLowerCase().includes('leader changed'))`)

	// A crash: failed, blanked, an active alert (the filter keeps it).
	if err := c.Crash("node-2"); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue("#alerts-state", "active")); err != nil {
		t.Fatal(err)
	}
	waitFor("node-2 failed and blanked, with an alert", `document.querySelector('#members tr[data-member="node-2"]').dataset.state === 'failed' &&
		document.querySelector('#members tr[data-member="node-2"]').dataset.blank === 'true' &&
		document.querySelector('#alerts li[data-kind="member_failed"][data-subject="node-2"][data-state="active"]') !== null &&
		[...document.querySelectorAll('#alerts li')].every(li => li.dataset.state === 'active')`)
	if still, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.loadedAt`)); err != nil || still != loaded {
		t.Fatalf("the page was reloaded (loaded at %v, now %v): %v", loaded, still, err)
	}

	// For the pictures: a second job under way, a static page that
	// settles.
	input, _ = json.Marshal(map[string]string{"gate": gs.URL + "/job-2"})
	sub2, err := actors.Call(ctx, c.Node("node-1"), jobs.Name, jobs.Submit{Script: gatedJob, Input: input, Parts: 8})
	if err != nil {
		t.Fatal(err)
	}
	g.let(3)
	job2 := fmt.Sprintf(`document.querySelector('[data-job=%q]')`, sub2.ID)
	waitFor("the second job at 38%", job2+` !== null && `+job2+`.dataset.progress === '38'`)
	// The charts grew by fetching only the new points.
	waitFor("the charts extended with new points only", `performance.getEntriesByType('resource').some(e => /history\?.*since=/.test(e.name)) &&
		Number(document.querySelector('[data-chart="cpu"] path[data-series="node-1"]').dataset.points) >= 30`)
	photograph(t, ctx, srv.URL, waitIn)

	// node-2 comes back: its alert is marked resolved, with its end.
	if err := chromedp.Do(ctx, chromedp.SetValue("#alerts-state", "resolved")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Restart("node-2"); err != nil {
		t.Fatal(err)
	}
	waitFor("node-2's alert resolved", `(() => {
		const li = document.querySelector('#alerts li[data-kind="member_failed"][data-subject="node-2"]');
		return li !== null && li.dataset.state === 'resolved' && li.querySelectorAll('time').length === 2 &&
			li.querySelector('.badge.resolved') !== null;
	})()`)
}

// photograph opens the static dashboard (?static=1) in a new tab, waits
// until it settles, and takes the whole page and each panel.
func photograph(t *testing.T, parent context.Context, base string, waitIn func(context.Context, string, string)) {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/?static=1")); err != nil {
		t.Fatalf("opening the static dashboard: %v", err)
	}
	waitIn(ctx, "the static page settled", `document.documentElement.dataset.settled === 'true' &&
		document.querySelectorAll('#charts path.series').length > 0 && document.querySelector('#logs').textContent.length > 0`)
	dir := *screenshots
	if dir == "" {
		dir = t.TempDir()
	}
	shots := []struct{ name, sel string }{{"", ""}, {"members", "#sec-members"}, {"charts", "#sec-charts"}, {"raft", "#sec-raft"},
		{"kv", "#sec-kv"}, {"jobs", "#sec-jobs"}, {"alerts", "#sec-alerts"}, {"logs", "#sec-logs"}}
	for _, s := range shots {
		name := "dashboard.png"
		if s.sel != "" {
			name = "dashboard-" + s.name + ".png"
		}
		// A panel alone under the header: the others are hidden.
		show := fmt.Sprintf(`document.querySelectorAll('main > section').forEach(s => s.hidden = %q !== '' && '#' + s.id !== %q)`, s.sel, s.sel)
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](show)); err != nil {
			t.Fatal(err)
		}
		// The viewport as tall as the page: the picture is what it shows.
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 200)); err != nil {
			t.Fatal(err)
		}
		height, err := chromedp.Run(ctx, chromedp.Evaluate[int64](`document.documentElement.scrollHeight`))
		if err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, height)); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if png, err = paletted(png); err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", filepath.Join(dir, name), len(png))
	}
}

// paletted re-encodes a screenshot with its 256 most frequent colours (a
// page is a few flat colours and anti-aliased text): a third of the size,
// for pictures committed to docs/.
func paletted(in []byte) ([]byte, error) {
	img, err := png.Decode(bytes.NewReader(in))
	if err != nil {
		return nil, err
	}
	count := map[color.RGBA]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			count[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	colors := slices.SortedFunc(maps.Keys(count), func(a, b color.RGBA) int {
		return cmp.Or(count[b]-count[a], cmp.Compare(a.R, b.R), cmp.Compare(a.G, b.G), cmp.Compare(a.B, b.B), cmp.Compare(a.A, b.A))
	})
	pal := make(color.Palette, 0, 256)
	for _, c := range colors[:min(len(colors), 256)] {
		pal = append(pal, c)
	}
	out := image.NewPaletted(b, pal)
	draw.Draw(out, b, img, b.Min, draw.Src)
	var buf bytes.Buffer
	err = (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, out)
	return buf.Bytes(), err
}

// TestDashboardCancelNeedsToken: on a node whose API has a token, the
// page opened with ?token= (the cookie) shows the jobs, but the cookie
// does not authenticate a DELETE: the cancel button's first try is
// refused, the page asks for the token, and with it the job is
// cancelled.
func TestDashboardCancelNeedsToken(t *testing.T) {
	bin := chromium(t)
	g := newGate()
	gs := httptest.NewServer(g)
	t.Cleanup(gs.Close)
	t.Cleanup(func() { close(g.done) })
	gu, _ := url.Parse(gs.URL)
	lim := jobs.DefaultLimits()
	lim.Timeout = 5 * time.Minute
	star, err := jobs.Starlark(jobs.StarlarkConfig{HTTPAllow: []string{gu.Host}, HTTPTimeout: 5 * time.Minute, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	jcfg := jobs.DefaultConfig()
	jcfg.Runtimes, jcfg.Slots, jcfg.Backup = []jobs.Runtime{star}, 1, -1
	c := newJobsCluster(t, 1, testConfig(nil), jcfg)
	node := c.Node(c.Names()[0])

	base, stopStreams := context.WithCancel(context.Background())
	srv := httptest.NewUnstartedServer(api.RequireToken(api.New(node, api.Config{}), api.NewToken("s3cret")))
	srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	srv.Start()
	t.Cleanup(func() { stopStreams(); srv.Close() })

	input, _ := json.Marshal(map[string]string{"gate": gs.URL + "/never"})
	sub, err := actors.Call(context.Background(), node, jobs.Name, jobs.Submit{Script: gatedJob, Input: input, Parts: 2})
	if err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(browser, 2*time.Minute)
	defer cancel()
	waitFor := func(what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#sec-jobs").innerText`))
			t.Fatalf("the dashboard never showed %s: %v\njobs panel:\n%s", what, err, page)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/?token=s3cret")); err != nil {
		t.Fatal(err)
	}
	job := fmt.Sprintf(`document.querySelector('[data-job=%q]')`, sub.ID)
	waitFor("the job's cancel button", job+` !== null && `+job+`.querySelector('[data-cancel]') !== null`)
	if err := chromedp.Do(ctx, chromedp.Click(fmt.Sprintf(`[data-cancel=%q]`, sub.ID))); err != nil {
		t.Fatal(err)
	}
	waitFor("the token asked for", `!document.querySelector('#token-form').hidden && document.querySelector('#jobs-note').textContent.includes('refused')`)
	if st, err := actors.Call(context.Background(), node, jobs.Name, jobs.StatusRequest{ID: sub.ID}); err != nil || st.State != jobs.Running && st.State != jobs.Pending {
		t.Fatalf("the job after a refused cancellation: %v %v", st.State, err)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue("#token", "s3cret"), chromedp.Click("#token-form button")); err != nil {
		t.Fatal(err)
	}
	waitFor("the job cancelled with the token", job+`.dataset.state === 'cancelled' && document.querySelector('#token-form').hidden`)
}

// TestDashboardSettlesUnderVirtualTime: headless Chromium with a virtual
// time budget (--dump-dom) returns the static page (?static=1), drawn and
// settled: it opens no stream. (The live page never does under a virtual
// time budget: an open event stream is a request that never ends, and
// virtual time waits for requests. Its streams open after load, so its
// load event fires.)
func TestDashboardSettlesUnderVirtualTime(t *testing.T) {
	bin := chromium(t)
	c := newCluster(t, 1, testConfig(telemetry.NewLogBuffer(50)))
	base, stopStreams := context.WithCancel(context.Background())
	srv := httptest.NewUnstartedServer(api.New(c.Node(c.Names()[0]), api.Config{}))
	srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	srv.Start()
	t.Cleanup(func() { stopStreams(); srv.Close() })
	for _, tc := range []struct{ path, want string }{
		{"/?static=1", `data-settled="true"`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		out, err := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
			"--dump-dom", srv.URL+tc.path).Output()
		cancel()
		if err != nil {
			t.Fatalf("chromium --virtual-time-budget --dump-dom %s: %v (did the page settle?)", tc.path, err)
		}
		if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), `data-member="node-1"`) {
			t.Errorf("the page %s under virtual time lacks %s:\n%.2000s", tc.path, tc.want, out)
		}
	}
}

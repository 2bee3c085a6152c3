package telemetry_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/jobs/jobstest"
	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/telemetry"
	"github.com/troupe-dev/troupe/transport/sim"
)

func TestEveryNodeSeesEveryStatus(t *testing.T) {
	c := newCluster(t, 3, testConfig(nil))
	names := c.Names()
	var last telemetry.Snapshot
	err := actortest.WaitFor(5*time.Second, func() bool {
		for _, n := range c.Nodes() {
			last = snapshot(t, n)
			if last.Leader != "node-3" || len(last.Members) != 3 {
				return false
			}
			for _, m := range last.Members {
				if m.State != "alive" || m.Stale || m.Status == nil || m.Status.Leader != "node-3" {
					return false
				}
			}
		}
		return true
	})
	if err != nil {
		b, _ := json.MarshalIndent(last, "", " ")
		t.Fatalf("not every node sees 3 alive members with fresh statuses and leader node-3: %v\n%s", err, b)
	}
	s := snapshot(t, c.Node("node-1"))
	for i, m := range s.Members {
		if m.Name != names[i] {
			t.Errorf("member %d is %s, want %s (name order)", i, m.Name, names[i])
		}
		st := m.Status
		var protos []actors.ProtocolName
		for _, p := range st.Protocols {
			protos = append(protos, p.Name)
		}
		for _, want := range []actors.ProtocolName{membership.Name, "election", jobs.Name, telemetry.Name} {
			if !slices.Contains(protos, want) {
				t.Errorf("%s's status lists protocols %v, without %s", m.Name, protos, want)
			}
		}
		if st.Goroutines <= 0 || st.MemBytes == 0 || st.HeapBytes == 0 || st.NumCPU <= 0 {
			t.Errorf("%s's status lacks host figures: %+v", m.Name, st)
		}
		t.Logf("%s: status of %d bytes, %d protocols", m.Name, st.Size, len(st.Protocols))
	}
	// The telemetry protocol itself sends statuses, so its rate is seen.
	err = actortest.WaitFor(5*time.Second, func() bool {
		for _, r := range snapshot(t, c.Node("node-2")).Rates {
			if r.Protocol == telemetry.Name && len(r.Points) > 0 && r.Points[len(r.Points)-1] > 0 {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("no telemetry message rate charted on node-2: %+v", snapshot(t, c.Node("node-2")).Rates)
	}
}

// TestKilledNodeAlertsEveryNodeWithin2s: the first survivor's membership
// reports the crash; every other survivor holds the member_failed alert
// within 2 s of that, measured on the events' own timestamps. On the sim
// network and on loopback gRPC.
func TestKilledNodeAlertsEveryNodeWithin2s(t *testing.T) {
	t.Run("sim", func(t *testing.T) { killedNodeAlerts(t) })
	t.Run("remote", func(t *testing.T) {
		if !*remoteAlerts {
			t.Skip("run with -remote-alerts: stopping a loopback cluster after a crash takes about 20 s (protoactor's writers retry the dead peer)")
		}
		actortest.SkipRemoteUnderRace(t)
		killedNodeAlerts(t, cluster.Remote())
	})
}

var remoteAlerts = flag.Bool("remote-alerts", false, "also measure alert propagation on loopback gRPC")

func killedNodeAlerts(t *testing.T, opts ...cluster.Option) {
	c := newCluster(t, 5, testConfig(nil), opts...)
	victim := actors.NodeName("node-2")
	survivors := slices.DeleteFunc(c.Names(), func(n actors.NodeName) bool { return n == victim })

	var mu sync.Mutex
	var crashed time.Time // reports before it are false detections of the live node
	detected := map[actors.NodeName]time.Time{}
	for _, name := range survivors {
		cancel, err := actors.Observe(c.Node(name), func(ev *membership.MemberFailed) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if _, ok := detected[name]; !ok && ev.Member.Name == victim && !crashed.IsZero() {
				detected[name] = now
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cancel)
	}
	mu.Lock()
	crashed = time.Now()
	mu.Unlock()
	if err := c.Crash(victim); err != nil {
		t.Fatal(err)
	}
	alerts := waitAlert(t, c, survivors, telemetry.MemberFailed, string(victim), crashed, jobstest.Failover)

	mu.Lock()
	defer mu.Unlock()
	var first actors.NodeName
	for name, at := range detected {
		if first == "" || at.Before(detected[first]) {
			first = name
		}
	}
	if first == "" {
		t.Fatal("no survivor's membership reported the crash, yet alerts came")
	}
	t0 := detected[first]
	var worst time.Duration
	for _, name := range survivors {
		a := alerts[name]
		gap := a.Received.Sub(t0)
		t.Logf("%s: alert %s from %v, %v after %s's detection", name, a.ID, a.Reporters, gap.Round(time.Microsecond), first)
		if gap > 2*time.Second {
			t.Errorf("%s got the member_failed alert %v after the first detection (at %s); the bound is 2s", name, gap, first)
		}
		worst = max(worst, gap)
		if a.Severity != telemetry.Critical || !strings.Contains(a.Message, string(victim)) {
			t.Errorf("%s's alert is %+v; want a critical alert naming %s", name, a, victim)
		}
	}
	t.Logf("alert propagation: worst %v after the first detection", worst.Round(time.Microsecond))
}

// flaky fails when told to, on the nodes it runs on.
type flaky struct{}

type fail struct{}

func (flaky) Name() actors.ProtocolName { return "flaky" }
func (flaky) Init(ctx *actors.Context) error {
	actors.OnTell(ctx, func(*actors.Context, fail) error { return errors.New("told to fail") })
	return nil
}

func TestAlertOfOneNodeReachesEveryNode(t *testing.T) {
	c := newCluster(t, 3, testConfig(nil))
	n1 := c.Node("node-1")
	if err := n1.Start(func() actors.Protocol { return flaky{} }); err != nil {
		t.Fatal(err)
	}
	if err := n1.Tell("flaky", fail{}); err != nil {
		t.Fatal(err)
	}
	got := waitAlert(t, c, c.Names(), telemetry.ProtocolRestarted, "flaky", time.Time{}, 5*time.Second)
	for name, a := range got {
		if a.Origin != "node-1" || !slices.Equal(a.Reporters, []actors.NodeName{"node-1"}) || a.Severity != telemetry.Warning {
			t.Errorf("%s holds %+v; want a warning from node-1 only", name, a)
		}
		if !strings.Contains(a.Message, "told to fail") {
			t.Errorf("%s: the alert %q does not carry the reason", name, a.Message)
		}
	}
}

func TestStartingNodeLearnsTheHistory(t *testing.T) {
	c := newCluster(t, 3, testConfig(nil))
	if err := c.Crash("node-3"); err != nil {
		t.Fatal(err)
	}
	waitAlert(t, c, []actors.NodeName{"node-1", "node-2"}, telemetry.MemberFailed, "node-3", time.Time{}, jobstest.Failover)
	waitAlert(t, c, []actors.NodeName{"node-1", "node-2"}, telemetry.LeaderChanged, "node-2", time.Time{}, jobstest.Failover)
	if _, err := c.Restart("node-3"); err != nil {
		t.Fatal(err)
	}
	// node-3's new incarnation was not there for either alert: it learns
	// them from a member.
	got := waitAlert(t, c, []actors.NodeName{"node-3"}, telemetry.MemberFailed, "node-3", time.Time{}, 5*time.Second)
	if a := got["node-3"]; a.Origin == "node-3" {
		t.Errorf("node-3 holds an alert of its own failure raised by itself: %+v", a)
	}
	waitAlert(t, c, []actors.NodeName{"node-3"}, telemetry.LeaderChanged, "node-2", time.Time{}, 5*time.Second)
}

func TestJobsAndFailedJobs(t *testing.T) {
	c := newCluster(t, 3, testConfig(nil))
	ctx := context.Background()
	good, err := actors.Call(ctx, c.Node("node-1"), jobs.Name, jobs.Submit{Script: squares, Input: json.RawMessage(`{"numbers": [1, 2, 3, 4]}`), Parts: 4})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := actors.Call(ctx, c.Node("node-2"), jobs.Name, jobs.Submit{Script: failing, Input: json.RawMessage(`{}`), Parts: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Every node shows both jobs, as their contacts report them.
	err = actortest.WaitFor(10*time.Second, func() bool {
		for _, n := range c.Nodes() {
			s := snapshot(t, n)
			i := slices.IndexFunc(s.Jobs, func(j telemetry.Job) bool { return j.ID == good.ID })
			k := slices.IndexFunc(s.Jobs, func(j telemetry.Job) bool { return j.ID == bad.ID })
			if i < 0 || k < 0 {
				return false
			}
			g, b := s.Jobs[i], s.Jobs[k]
			if g.State != "succeeded" || g.PartsDone != g.PartsTotal || g.PartsTotal != 4 || g.Contact != "node-1" ||
				b.State != "failed" || b.Contact != "node-2" || b.Error == "" {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("not every node shows the two jobs ended: %+v", snapshot(t, c.Node("node-3")).Jobs)
	}
	got := waitAlert(t, c, c.Names(), telemetry.JobFailed, bad.ID, time.Time{}, 5*time.Second)
	if a := got["node-3"]; a.Origin != "node-2" || !strings.Contains(a.Message, "boom") {
		t.Errorf("node-3's job alert is %+v; want one from node-2 with the script's error", a)
	}
	if _, ok := findAlert(t, c.Node("node-1"), telemetry.JobFailed, good.ID, time.Time{}); ok {
		t.Errorf("the job that succeeded raised a job_failed alert")
	}
}

const squares = `
def split(input, n):
    xs = input["numbers"]
    return [xs[i::n] for i in range(n)]
def run(part):
    return [x * x for x in part]
def merge(results):
    total = 0
    for r in results:
        for x in r:
            total += x
    return total
`

const failing = `
def split(input, n):
    return list(range(n))
def run(part):
    fail("boom")
def merge(results):
    return None
`

// fullDisk is a probe whose disk fills up, then frees space.
type fullDisk struct {
	mu   sync.Mutex
	free uint64
}

func (f *fullDisk) set(free uint64) { f.mu.Lock(); f.free = free; f.mu.Unlock() }

func (f *fullDisk) Sample() telemetry.HostSample {
	s := telemetry.SystemProbe("").Sample()
	f.mu.Lock()
	defer f.mu.Unlock()
	s.DiskFree, s.DiskTotal = f.free, 100<<30
	return s
}

func TestDiskAlmostFull(t *testing.T) {
	disk := &fullDisk{free: 50 << 30}
	cfg := testConfig(nil)
	cfg.Probe = disk
	c := newCluster(t, 2, cfg)
	disk.set(5 << 30) // 95% used, on both nodes
	got := waitAlert(t, c, c.Names(), telemetry.DiskAlmostFull, "node-1", time.Time{}, 5*time.Second)
	if a := got["node-2"]; !strings.Contains(a.Message, "95%") {
		t.Errorf("the disk alert says %q; want the used share, 95%%", a.Message)
	}
	count := func() int {
		n := 0
		for _, a := range history(t, c.Node("node-2")) {
			if a.Kind == telemetry.DiskAlmostFull && a.Subject == "node-1" {
				n++
			}
		}
		return n
	}
	// Staying full raises nothing more; freeing space and filling again
	// raises a second alert.
	s0 := snapshot(t, c.Node("node-1")).Members[0].Status.Seq
	actortest.Eventually(t, 5*time.Second, "more statuses", func() bool {
		return snapshot(t, c.Node("node-1")).Members[0].Status.Seq > s0+3
	})
	if n := count(); n != 1 {
		t.Fatalf("%d disk alerts about node-1 while it stayed full; want 1", n)
	}
	disk.set(50 << 30)
	s0 = snapshot(t, c.Node("node-1")).Members[0].Status.Seq
	actortest.Eventually(t, 5*time.Second, "statuses after freeing space", func() bool {
		return snapshot(t, c.Node("node-1")).Members[0].Status.Seq > s0+2
	})
	disk.set(1 << 30)
	actortest.Eventually(t, 5*time.Second, "a second disk alert", func() bool { return count() == 2 })
}

func TestLogsFromAnyNode(t *testing.T) {
	logs := telemetry.NewLogBuffer(500)
	c := newCluster(t, 3, testConfig(logs))
	l3 := c.Node("node-3").Logger()
	l3.Warn().Str("marker", "m-42").Msg("a line on node-3")
	ctx := context.Background()
	before := requestsSent(c.Hub)
	got, err := actors.Call(ctx, c.Node("node-1"), telemetry.Name, telemetry.LogsQuery{Node: "node-3", Limit: 50, MinLevel: "warn"})
	if err != nil {
		t.Fatal(err)
	}
	if requestsSent(c.Hub) == before {
		t.Errorf("node-1 answered for node-3 without asking it over the network")
	}
	if got.Node != "node-3" || len(got.Lines) == 0 || len(got.Lines) > 50 {
		t.Fatalf("logs of node-3: %d lines from %q", len(got.Lines), got.Node)
	}
	found := false
	for _, raw := range got.Lines {
		var l map[string]any
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatalf("line %s is not JSON: %v", raw, err)
		}
		if node, ok := l["node"]; ok && node != "node-3" {
			t.Errorf("a line of %v among node-3's: %s", node, raw)
		}
		if lv := l["level"]; lv != "warn" && lv != "error" {
			t.Errorf("a line of level %v asked for warn and above: %s", lv, raw)
		}
		found = found || l["marker"] == "m-42"
	}
	if !found {
		t.Errorf("node-3's marked line is missing from %d lines", len(got.Lines))
	}
	own, err := actors.Call(ctx, c.Node("node-2"), telemetry.Name, telemetry.LogsQuery{Node: "node-2", Limit: 5, MinLevel: ""})
	if err != nil || len(own.Lines) == 0 || len(own.Lines) > 5 {
		t.Errorf("node-2's own logs: %d lines, %v", len(own.Lines), err)
	}

	if _, err := actors.Call(ctx, c.Node("node-1"), telemetry.Name, telemetry.LogsQuery{Node: "node-9", Limit: 10, MinLevel: ""}); !errors.Is(err, telemetry.ErrUnknownNode) {
		t.Errorf("logs of a node that is not a member: %v, want ErrUnknownNode", err)
	}
	if _, err := actors.Call(ctx, c.Node("node-1"), telemetry.Name, telemetry.LogsQuery{Node: "node-2", Limit: telemetry.MaxLogLines + 1, MinLevel: ""}); !errors.Is(err, telemetry.ErrBadRequest) {
		t.Errorf("too many lines: %v, want ErrBadRequest", err)
	}
	if _, err := actors.Call(ctx, c.Node("node-1"), telemetry.Name, telemetry.LogsQuery{Node: "node-2", Limit: 10, MinLevel: "loud"}); !errors.Is(err, telemetry.ErrBadRequest) || !strings.Contains(err.Error(), "valid:") {
		t.Errorf("an unknown level: %v, want ErrBadRequest naming the valid ones", err)
	}
	// A crashed member: refused at once, or timed out.
	if err := c.Crash("node-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := actors.Call(ctx, c.Node("node-1"), telemetry.Name, telemetry.LogsQuery{Node: "node-2", Limit: 10, MinLevel: ""}); !errors.Is(err, telemetry.ErrUnknownNode) && !errors.Is(err, telemetry.ErrTimeout) {
		t.Errorf("logs of a crashed node: %v, want ErrUnknownNode or ErrTimeout", err)
	}
	// node-3 answers too late: the query times out.
	if err := c.Hub.SetLinkFaults("node-3", "node-1", sim.Faults{Latency: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := actors.Call(ctx, c.Node("node-1"), telemetry.Name, telemetry.LogsQuery{Node: "node-3", Limit: 10, MinLevel: ""}); !errors.Is(err, telemetry.ErrTimeout) {
		t.Errorf("logs over a slow link: %v, want ErrTimeout", err)
	}
}

func TestNodeWithoutLogBuffer(t *testing.T) {
	c := newCluster(t, 2, testConfig(nil))
	_, err := actors.Call(context.Background(), c.Node("node-1"), telemetry.Name, telemetry.LogsQuery{Node: "node-2", Limit: 10, MinLevel: ""})
	if !errors.Is(err, telemetry.ErrNoLogs) {
		t.Fatalf("logs of a node without a buffer: %v, want ErrNoLogs", err)
	}
}

func requestsSent(h *sim.Hub) int64 {
	var n int64
	for _, r := range h.Stats() {
		if r.Protocol == string(telemetry.Name) && r.Type == "troupe.telemetry.v1.TelemetryLogsRequest" {
			n += r.Sent
		}
	}
	return n
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		change func(*telemetry.Config)
		want   string
	}{
		{func(c *telemetry.Config) { c.StatusInterval = time.Millisecond }, "StatusInterval"},
		{func(c *telemetry.Config) { c.StaleAfter = -time.Second }, "StaleAfter"},
		{func(c *telemetry.Config) { c.AlertHistory = -1 }, "AlertHistory"},
		{func(c *telemetry.Config) { c.DiskFull = 1.5 }, "DiskFull"},
		{func(c *telemetry.Config) { c.LogsTimeout = -1 }, "LogsTimeout"},
	} {
		cfg := telemetry.DefaultConfig()
		tc.change(&cfg)
		_, err := telemetry.New(cfg)
		if !errors.Is(err, telemetry.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s out of range: %v", tc.want, err)
		}
	}
	if _, err := telemetry.New(telemetry.Config{}); err != nil {
		t.Errorf("the zero Config (all defaults): %v", err)
	}
	if err := telemetry.DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
}

func TestNeedsMembership(t *testing.T) {
	c := clustertest.NewCluster(t, 1)
	f, err := telemetry.New(telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Nodes()[0].Start(f)
	if err == nil || !strings.Contains(err.Error(), "membership") {
		t.Fatalf("telemetry without membership: %v; want an error naming membership", err)
	}
}

func ExampleSeverity() {
	for _, s := range []telemetry.Severity{telemetry.Info, telemetry.Warning, telemetry.Critical} {
		b, _ := json.Marshal(s)
		fmt.Println(string(b))
	}
	// Output:
	// "info"
	// "warning"
	// "critical"
}

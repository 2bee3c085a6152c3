package telemetry_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/jobs/jobstest"
	"github.com/troupe-dev/troupe/telemetry"
)

// markedProbe is the system's probe with a goroutine count the test sets:
// a change every node reports in its next status.
type markedProbe struct {
	telemetry.Probe
	mark *atomic.Int64
}

func (p markedProbe) Sample() telemetry.HostSample {
	s := p.Probe.Sample()
	if m := p.mark.Load(); m != 0 {
		s.Goroutines = int(m)
	}
	return s
}

// TestDashboardOf25NodesShowsAChangeWithin3s: statuses go to the
// aggregator (node-25, the leader), and node-1's dashboard fetches its
// table; a change on every node shows there for every node within 3 s, at
// the default status interval.
func TestDashboardOf25NodesShowsAChangeWithin3s(t *testing.T) {
	const n = 25
	jcfg := jobs.DefaultConfig()
	jcfg.Slots = 1
	c := jobstest.NewCluster(t, n, jcfg)
	var mark atomic.Int64
	cfg := telemetry.DefaultConfig() // a status every second, as in production
	cfg.Probe = markedProbe{Probe: telemetry.SystemProbe(""), mark: &mark}
	startTelemetry(t, c, cfg)
	srv := httptest.NewServer(telemetry.Handler(c.Node("node-1"), telemetry.HandlerConfig{}))
	defer srv.Close()

	// shows reports how many members node-1's dashboard shows with a
	// current status reporting goroutines, and who aggregates.
	shows := func(goroutines int) (int, string) {
		resp, err := http.Get(srv.URL + "/v1/telemetry")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s telemetry.Snapshot
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/telemetry: %d, %v", resp.StatusCode, err)
		}
		count := 0
		for _, m := range s.Members {
			if m.Status != nil && !m.Stale && (goroutines == 0 || m.Status.Goroutines == goroutines) {
				count++
			}
		}
		return count, string(s.Aggregator)
	}
	var got int
	var agg string
	if err := actortest.WaitFor(10*time.Second, func() bool { got, agg = shows(0); return got == n }); err != nil {
		t.Fatalf("node-1's dashboard shows %d of %d members with a current status (aggregator %s)", got, n, agg)
	}
	if agg != "node-25" {
		t.Errorf("aggregator %s; want node-25, the leader", agg)
	}
	const marked = 424242
	mark.Store(marked)
	if err := actortest.WaitFor(3*time.Second, func() bool { got, _ = shows(marked); return got == n }); err != nil {
		t.Fatalf("3 s after the change node-1's dashboard shows it for %d of %d members", got, n)
	}

	// The aggregator fails: once membership declares it failed, node-24
	// leads, aggregates, and node-1's dashboard shows the 24 survivors
	// current again.
	if err := c.Crash("node-25"); err != nil {
		t.Fatal(err)
	}
	crashed := time.Now()
	_ = actortest.WaitFor(15*time.Second, func() bool { _, agg = shows(0); return agg == "node-24" })
	t.Logf("DEBUG agg after %v", time.Since(crashed))
	if err := actortest.WaitFor(15*time.Second, func() bool { got, agg = shows(marked); return got == n-1 && agg == "node-24" }); err != nil {
		t.Fatalf("after node-25 crashed node-1's dashboard shows %d of %d survivors current, aggregator %s (want node-24)", got, n-1, agg)
	}
}

package api_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/jobs/jobstest"
	"github.com/troupe-dev/troupe/telemetry"
)

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestDashboardMetricsAndTelemetry: the API serves the dashboard at /,
// /metrics and the telemetry endpoints beside its own.
func TestDashboardMetricsAndTelemetry(t *testing.T) {
	cfg := jobs.DefaultConfig()
	cfg.Slots = 1
	c := jobstest.NewCluster(t, 2, cfg)
	tf, err := telemetry.New(telemetry.Config{StatusInterval: 100 * time.Millisecond, Logs: telemetry.NewLogBuffer(10)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(tf); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(c.Node("node-1"), api.Config{}))
	defer srv.Close()

	resp, body := get(t, srv.URL+"/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "static/dashboard.js") {
		t.Errorf("GET /: %s %q: %.200s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	for _, path := range []string{"/static/dashboard.js", "/static/dashboard.css"} {
		if resp, body := get(t, srv.URL+path); resp.StatusCode != 200 || len(body) < 500 {
			t.Errorf("GET %s: %s, %d bytes", path, resp.Status, len(body))
		}
	}
	if resp, body := get(t, srv.URL+"/metrics"); resp.StatusCode != 200 || !strings.Contains(body, `troupe_messages_received_total{node="node-1",protocol="jobs"`) {
		t.Errorf("GET /metrics: %s: %.300s", resp.Status, body)
	}
	resp, body = get(t, srv.URL+"/v1/telemetry")
	var snap telemetry.Snapshot
	if err := json.Unmarshal([]byte(body), &snap); resp.StatusCode != 200 || err != nil || snap.Node != "node-1" {
		t.Errorf("GET /v1/telemetry: %s %v: %.300s", resp.Status, err, body)
	}
	resp, body = get(t, srv.URL+"/v1/alerts")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "[") {
		t.Errorf("GET /v1/alerts: %s: %.300s", resp.Status, body)
	}
	for _, tc := range []struct {
		path string
		code int
		says string
	}{
		{"/v1/logs/node-1?limit=5", 200, `"node": "node-1"`},
		{"/v1/logs/node-9", 404, "not a member"},
		{"/v1/logs/node-1?limit=many", 400, "limit"},
		{"/v1/logs/node-1?level=loud", 400, "level"},
		{"/nothing/here", 404, "no such endpoint"},
	} {
		if resp, body := get(t, srv.URL+tc.path); resp.StatusCode != tc.code || !strings.Contains(body, tc.says) {
			t.Errorf("GET %s: %s %.300s; want %d saying %q", tc.path, resp.Status, body, tc.code, tc.says)
		}
	}

	// The event stream sends snapshots.
	resp, err = http.Get(srv.URL + "/v1/telemetry/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("events: Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	events := 0
	for events < 2 && sc.Scan() {
		line := sc.Text()
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var s telemetry.Snapshot
			if err := json.Unmarshal([]byte(data), &s); err != nil || s.Node != "node-1" {
				t.Fatalf("event data %.200s: %v", data, err)
			}
			events++
		}
	}
	if events < 2 {
		t.Errorf("%d snapshot events, want 2: %v", events, sc.Err())
	}
}

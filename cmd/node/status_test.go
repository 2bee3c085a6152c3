package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/config"
	"github.com/troupe-dev/troupe/telemetry"
)

func TestNodeLogger(t *testing.T) {
	// auto: a buffer is not a terminal, so JSON.
	for _, format := range []string{"json", "console", "auto"} {
		var out bytes.Buffer
		log, logs, err := nodeLogger(&out, format, zerolog.InfoLevel)
		if err != nil {
			t.Fatal(err)
		}
		log = log.With().Str("node", "n1").Logger()
		log.Info().Str("k", "v").Msg("hello")
		log.Debug().Msg("hidden")
		line := strings.TrimSpace(out.String())
		var obj map[string]any
		isJSON := json.Unmarshal([]byte(line), &obj) == nil
		if isJSON != (format != "console") || !strings.Contains(line, "hello") || strings.Contains(line, "hidden") {
			t.Errorf("--log-format %s wrote %q", format, line)
		}
		// The buffer always holds JSON, for other nodes to read.
		kept, _ := logs.Lines("n1", 10, zerolog.TraceLevel, 1<<20)
		if len(kept) != 1 || json.Unmarshal(kept[0], &obj) != nil || obj["k"] != "v" {
			t.Errorf("--log-format %s kept %q", format, kept)
		}
	}
	if _, _, err := nodeLogger(io.Discard, "xml", zerolog.InfoLevel); err == nil || !strings.Contains(err.Error(), "valid: auto, json, console") {
		t.Errorf("--log-format xml: %v", err)
	}
}

func TestPrintStatus(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	st := &telemetry.Status{CPUPercent: 12.4, MemBytes: 48 << 20, Goroutines: 61,
		Protocols: []telemetry.ProtocolStatus{{Name: "jobs", MailboxDepth: 2, Restarts: 1, InPerSec: 10}, {Name: "telemetry", InPerSec: 2.5}}}
	s := telemetry.Snapshot{Node: "n1", Time: at, Leader: "n2", Term: 3,
		Members: []telemetry.Member{
			{Name: "n1", State: "alive", LastSeen: at.Add(-200 * time.Millisecond), Status: st},
			{Name: "n2", State: "alive", LastSeen: at.Add(-500 * time.Millisecond), Status: st},
			{Name: "n3", State: "failed", Stale: true, LastSeen: at.Add(-4 * time.Second), Status: st},
			{Name: "n4", State: "alive", Stale: true},
		},
		Jobs: []telemetry.Job{{ID: "n1.x.1", Contact: "n1", State: "running", PartsDone: 3, PartsTotal: 6},
			{ID: "n1.x.0", Contact: "n1", State: "failed", PartsTotal: 2, Error: "split: boom\ntraceback"}},
		// As the node sends them: active first, then by start, newest first.
		Alerts: []telemetry.Alert{
			{State: telemetry.Active, Started: at, RaisedBy: "n1", Severity: telemetry.Critical, Message: "member n3 failed", Reporters: []actors.NodeName{"n1", "n2"}},
			{State: telemetry.Active, Started: at.Add(-time.Minute), RaisedBy: "n4", Severity: telemetry.Critical, Message: "raft on n4 reaches 1 of its 3 voters", Reporters: []actors.NodeName{"n4"}},
			{State: telemetry.Resolved, Started: at.Add(-3 * time.Second), Ended: at.Add(-time.Second), RaisedBy: "n2", Severity: telemetry.Warning, Message: "member n3 is suspected", Reporters: []actors.NodeName{"n2"}},
			{State: telemetry.Event, Started: at.Add(-time.Hour), RaisedBy: "n2", Severity: telemetry.Info, Message: "older"},
		},
	}
	var out bytes.Buffer
	if err := printStatus(&out, s, 3); err != nil {
		t.Fatal(err)
	}
	want := `cluster seen from n1 at 15:04:05: leader n2 (term 3)

NODE  STATE   CPU  MEMORY    GOROUTINES  MAILBOXES  RESTARTS  MSGS/S  LAST STATUS
n1    alive   12%  48.0 MiB  61          2          1         12.5    0.2s ago
n2 *  alive   12%  48.0 MiB  61          2          1         12.5    0.5s ago
n3    failed  12%  48.0 MiB  61          2          1         12.5    4.0s ago (stale)
n4    alive   -    -         -           -          -         -       none
(* leader)

JOB     CONTACT  STATE    PROGRESS              ERROR
n1.x.1  n1       running  [#####.....] 3/6 50%  
n1.x.0  n1       failed   [..........] 0/2 0%   split: boom

ALERTS (2 active)
STARTED   STATE              SEVERITY  MESSAGE                               RAISED BY
15:04:05  ACTIVE             critical  member n3 failed                      n1 (also n2)
15:03:05  ACTIVE             critical  raft on n4 reaches 1 of its 3 voters  n4
15:04:02  resolved 15:04:04  warning   member n3 is suspected                n2
`
	if got := out.String(); got != want {
		t.Errorf("printed:\n%s\nwant:\n%s", got, want)
	}
	// Every active alert is printed, whatever --alerts says; --alerts 0
	// prints none.
	out.Reset()
	if err := printAlerts(&out, s.Alerts, 1); err != nil || strings.Count(out.String(), "ACTIVE") != 2 || strings.Contains(out.String(), "resolved") {
		t.Errorf("--alerts 1 with 2 active printed %v:\n%s", err, out.String())
	}
	out.Reset()
	if err := printAlerts(&out, s.Alerts, 0); err != nil || out.Len() != 0 {
		t.Errorf("--alerts 0 printed %v:\n%s", err, out.String())
	}
}

// TestRunServesDashboardMetricsAndStatus runs two `node run` nodes and
// reads them as an operator would: node status, the dashboard, /metrics.
func TestRunServesDashboardMetricsAndStatus(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	ports := actortest.FreePorts(t, 6)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	var https []string
	for i, name := range []string{"n1", "n2"} {
		flags := loopbackFlags(name, ports[3*i:])
		flags["node.log_format"], flags["node.data_dir"], flags["jobs.max_steps"], flags["jobs.part_timeout"] = "json", t.TempDir(), "1048576", "1s"
		if i == 0 {
			flags["telemetry.protoactor_metrics"] = "true"
		}
		if i > 0 {
			flags["membership.join"] = fmt.Sprintf("127.0.0.1:%d", ports[1])
		}
		https = append(https, "http://"+flags["api.listen"])
		go func() { done <- runNode(ctx, config.Sources{Flags: flags}) }()
	}
	defer func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("node stopped with %v", err)
			}
		}
	}()
	var out string
	actortest.Eventually(t, 20*time.Second, "node status shows both nodes alive and the leader", func() bool {
		var err error
		out, err = cli(t, "status", "--node", https[0])
		return err == nil && strings.Contains(out, "leader n2") && strings.Count(out, " alive ") == 2 &&
			strings.Contains(out, "n2 *")
	})
	t.Logf("node status:\n%s", out)
	if out, err := cli(t, "status", "--node", https[1], "--json"); err != nil || !strings.Contains(out, `"members"`) {
		t.Errorf("status --json: %v\n%s", err, out)
	}

	// The dashboard opens an event stream: stopping the node must end it
	// (the deferred stop checks that runNode returns).
	resp, err := http.Get(https[0] + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "static/dashboard.js") {
		t.Errorf("GET / is not the dashboard: %.200s", page)
	}
	stream, err := http.Get(https[0] + "/v1/telemetry/events")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()

	resp, err = http.Get(https[0] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, name := range []string{"troupe_messages_received_total", "troupe_mailbox_depth", "go_goroutines", "protoactor_actor_spawn_count_total",
		"troupe_swim_probes_total", "troupe_swim_members", "troupe_swim_health_score", "troupe_swim_suspicions_total", "troupe_swim_refutations_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("/metrics of n1 lacks %s", name)
		}
	}
}

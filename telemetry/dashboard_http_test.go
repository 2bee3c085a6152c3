package telemetry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/telemetry"
)

// getJSON GETs path and decodes a 200 answer into out (if not nil); it
// returns the status and the body.
func getJSON(t *testing.T, srv *httptest.Server, path string, out any) (int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, raw)
		}
	}
	return resp.StatusCode, string(raw)
}

// badRequests checks that each query of path gets 400 with the JSON error
// shape, its message naming what is wrong.
func badRequests(t *testing.T, srv *httptest.Server, path string, cases map[string]string) {
	t.Helper()
	for query, want := range cases {
		code, raw := getJSON(t, srv, path+"?"+query, nil)
		var e struct{ Error, Code string }
		_ = json.Unmarshal([]byte(raw), &e)
		if code != http.StatusBadRequest || e.Code != "bad_request" || !strings.Contains(e.Error, want) {
			t.Errorf("GET %s?%.80s: %d %s; want 400 bad_request naming %q", path, query, code, raw, want)
		}
	}
}

// The history keeps one point per step per member, at most HistoryPoints
// (the oldest go), with timer firings apart from messages; a window out of
// range, or garbage, gets 400; an unknown node 404.
func TestHistoryEndpoint(t *testing.T) {
	cfg := testConfig(nil)
	cfg.HistoryStep, cfg.HistoryPoints = 100*time.Millisecond, 20
	c := newCluster(t, 3, cfg)
	// node-3 leads, so it aggregates the statuses and keeps the rings
	// (node-1 and node-2 ask it): asking it directly, a leader change on
	// a loaded machine, which starts the rings again elsewhere, does not
	// keep the ring from filling here.
	srv := httptest.NewServer(telemetry.Handler(c.Node("node-3"), telemetry.HandlerConfig{}))
	t.Cleanup(srv.Close)

	var h telemetry.History
	var first int64
	actortest.Eventually(t, 20*time.Second, "a full ring whose oldest point moved on", func() bool {
		if code, raw := getJSON(t, srv, "/v1/telemetry/history", &h); code != http.StatusOK {
			t.Fatalf("GET history: %d %s", code, raw)
		}
		s := h.Series[0]
		if len(s.T) < cfg.HistoryPoints {
			return false
		}
		if first == 0 {
			first = s.T[0]
		}
		return s.T[0] > first
	})
	if h.StepMS != 100 || h.MaxWindowMS != 2000 || len(h.Series) != 3 {
		t.Fatalf("history: step %d ms, max window %d ms, %d series; want 100, 2000, 3", h.StepMS, h.MaxWindowMS, len(h.Series))
	}
	for _, s := range h.Series {
		n := len(s.T)
		if n > cfg.HistoryPoints {
			t.Errorf("%s: %d points; the ring keeps %d", s.Node, n, cfg.HistoryPoints)
		}
		for _, col := range [][]float64{s.CPUPercent, s.RSSBytes, s.HeapBytes, s.Goroutines, s.MailboxDepth, s.MsgsPerSec, s.TimersPerSec, s.BytesIn, s.BytesOut} {
			if len(col) != n {
				t.Fatalf("%s: a column of %d values for %d times", s.Node, len(col), n)
			}
		}
		for i := 1; i < n; i++ {
			if s.T[i] <= s.T[i-1] {
				t.Fatalf("%s: times not increasing: %v", s.Node, s.T)
			}
		}
		if s.Goroutines[n-1] == 0 || s.HeapBytes[n-1] == 0 {
			t.Errorf("%s: no goroutines or heap in its last point", s.Node)
		}
		var tel *telemetry.ProtocolSeries
		for i := range s.Protocols {
			if s.Protocols[i].Name == telemetry.Name {
				tel = &s.Protocols[i]
			}
		}
		// The telemetry protocol's status timer fires 10 times a second:
		// shown as timer firings, not as messages.
		if tel == nil || tel.TimersPerSec[n-1] < 5 || s.TimersPerSec[n-1] < tel.TimersPerSec[n-1] {
			t.Errorf("%s: the telemetry protocol's timer firings are not charted apart: %+v", s.Node, tel)
		}
	}

	var w telemetry.History
	if code, raw := getJSON(t, srv, "/v1/telemetry/history?window=500ms&node=node-2", &w); code != http.StatusOK {
		t.Fatalf("GET a window of one node: %d %s", code, raw)
	}
	if len(w.Series) != 1 || w.Series[0].Node != "node-2" || len(w.Series[0].T) > 6 || w.WindowMS != 500 {
		t.Errorf("a 500ms window of node-2: %d series, %d points, window %d ms", len(w.Series), len(w.Series[0].T), w.WindowMS)
	}
	// since: only the points after it (a chart that holds the others).
	last := h.Series[0].T[len(h.Series[0].T)-1]
	var newer telemetry.History
	if code, raw := getJSON(t, srv, "/v1/telemetry/history?node=node-1&since="+jsonNum(uint64(last)), &newer); code != http.StatusOK {
		t.Fatalf("GET history since: %d %s", code, raw)
	}
	for _, at := range newer.Series[0].T {
		if at <= last {
			t.Errorf("history since %d holds a point at %d", last, at)
		}
	}
	badRequests(t, srv, "/v1/telemetry/history", map[string]string{
		"since=-1":                         "since",
		"since=soon":                       "since",
		"since=" + strings.Repeat("9", 30): "since",
		"window=1ms":                       "use 100ms to 2s",
		"window=1h":                        "use 100ms to 2s",
		"window=-5m":                       "window",
		"window=15":                        "use a duration",
		"window=soon":                      "use a duration",
		"window=" + strings.Repeat("9", 40) + "h": "use a duration",
		"node=" + strings.Repeat("n", 300):        "at most 256",
		"limit=5":                                 "limit",
		"window=1s&window=2s":                     "window",
	})
	if code, raw := getJSON(t, srv, "/v1/telemetry/history?node=node-9", nil); code != http.StatusNotFound {
		t.Errorf("history of a node that is not a member: %d %s; want 404", code, raw)
	}
}

// GET /v1/telemetry/raft shows the group's voters, its quorum, each
// member's role, commit and applied, and the leader's lag per follower;
// with two of three voters gone the quorum is lost.
func TestRaftPanelEndpoint(t *testing.T) {
	c := newCluster(t, 3, testConfig(nil), cluster.Membership(clustertest.SteadySimMembership()))
	startRaft(t, c)
	srv := httptest.NewServer(telemetry.Handler(c.Node("node-1"), telemetry.HandlerConfig{}))
	t.Cleanup(srv.Close)
	var p telemetry.RaftPanel
	var leader actors.NodeName
	actortest.Eventually(t, 20*time.Second, "every member's raft view, the leader's followers", func() bool {
		if code, raw := getJSON(t, srv, "/v1/telemetry/raft", &p); code != http.StatusOK {
			t.Fatalf("GET raft: %d %s", code, raw)
		}
		leader = ""
		for _, m := range p.Members {
			if m.Raft == nil {
				return false
			}
			if m.Raft.State == "StateLeader" && len(m.Raft.Followers) == 2 {
				leader = m.Name
			}
		}
		return p.Group != nil && len(p.Members) == 3 && leader != ""
	})
	if p.Group.Quorum != "healthy" || len(p.Group.Voters) != 3 || p.Group.Majority != 2 || len(p.Group.Reachable) != 3 {
		t.Fatalf("group %+v; want 3 voters, all reachable, a healthy quorum", p.Group)
	}
	kc, err := kv.NewClient(c.Node(leader))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	idx, err := kc.Put(ctx, "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 20*time.Second, "the followers caught up with the write", func() bool {
		getJSON(t, srv, "/v1/telemetry/raft", &p)
		for _, m := range p.Members {
			if m.Name != leader {
				continue
			}
			for _, f := range m.Raft.Followers {
				if f.Match < idx || f.Lag != 0 {
					return false
				}
			}
			return m.Raft.Commit >= idx && m.Raft.Applied >= idx && m.Raft.Keys == 1
		}
		return false
	})

	var down []actors.NodeName
	for _, n := range c.Names() {
		if n != "node-1" {
			down = append(down, n)
		}
	}
	for _, n := range down {
		if err := c.Crash(n); err != nil {
			t.Fatal(err)
		}
	}
	actortest.Eventually(t, 30*time.Second, "node-1 sees the quorum lost", func() bool {
		getJSON(t, srv, "/v1/telemetry/raft", &p)
		return p.Group != nil && p.Group.Quorum == "lost" && len(p.Group.Reachable) == 1
	})
	for _, m := range p.Members {
		if m.Name != "node-1" && (m.State != "failed" || !m.Stale) {
			t.Errorf("%s: %s, stale %v; want failed and stale", m.Name, m.State, m.Stale)
		}
	}
}

// Logs: a search keeps the lines holding the text, ignoring case; since
// keeps those written after a cursor; the follow stream sends the latest
// lines, then new ones, with large integers intact; bad searches, cursors
// and limits get 400.
func TestLogsSearchAndFollow(t *testing.T) {
	logs := telemetry.NewLogBuffer(500)
	c := newCluster(t, 2, testConfig(logs))
	srv := httptest.NewServer(telemetry.Handler(c.Node("node-1"), telemetry.HandlerConfig{Push: 50 * time.Millisecond}))
	t.Cleanup(srv.Close)
	node2 := zerolog.New(logs).With().Str("node", "node-2").Logger()
	node2.Warn().Msg("Disk Nearly Full on node-2")
	node2.Info().Msg("all is well")

	var l telemetry.Logs
	if code, raw := getJSON(t, srv, "/v1/logs/node-2?q=disk+nearly&level=info", &l); code != http.StatusOK {
		t.Fatalf("search: %d %s", code, raw)
	}
	if len(l.Lines) != 1 || !strings.Contains(string(l.Lines[0]), "Disk Nearly Full") || l.Last == 0 {
		t.Fatalf("a search for 'disk nearly' in node-2's logs: %d lines, last %d: %s", len(l.Lines), l.Last, l.Lines)
	}
	node2.Info().Uint64("id", 12345678901234567891).Msg("after the cursor")
	var after telemetry.Logs
	if code, raw := getJSON(t, srv, "/v1/logs/node-2?since="+jsonNum(l.Last), &after); code != http.StatusOK {
		t.Fatalf("since: %d %s", code, raw)
	}
	if len(after.Lines) != 1 || !strings.Contains(compact(after.Lines[0]), `"id":12345678901234567891`) || after.Last <= l.Last {
		t.Fatalf("lines since %d: %s (last %d)", l.Last, after.Lines, after.Last)
	}

	badRequests(t, srv, "/v1/logs/node-2", map[string]string{
		"q=" + strings.Repeat("x", telemetry.MaxLogSearch+1): "at most 256",
		"q=a%00b":                          "control characters",
		"q=%ff":                            "UTF-8",
		"since=-1":                         "since",
		"since=1e3":                        "since",
		"since=" + strings.Repeat("9", 30): "since",
		"limit=0":                          "limit",
		"level=loud":                       "level",
		"grep=x":                           "grep",
	})
	badRequests(t, srv, "/v1/logs/node-2/follow", map[string]string{"q=a%0Ab": "control characters", "since=5": "since"})

	// Follow: the latest lines, then a new one.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/logs/node-2/follow?q="+url.QueryEscape("marker"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("follow: Content-Type %q", ct)
	}
	node2.Info().Msg("marker one")
	events := make(chan telemetry.Logs)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				event = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok && event == "lines" {
				var l telemetry.Logs
				if json.Unmarshal([]byte(v), &l) == nil {
					select {
					case events <- l:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	var seen []string
	next := func(what string) {
		t.Helper()
		select {
		case l, ok := <-events:
			if !ok {
				t.Fatalf("the follow stream ended before %s", what)
			}
			for _, line := range l.Lines {
				seen = append(seen, string(line))
			}
		case <-ctx.Done():
			t.Fatalf("no %s on the follow stream; seen %v", what, seen)
		}
	}
	for !strings.Contains(strings.Join(seen, "\n"), "marker one") {
		next("marker one")
	}
	node2.Info().Msg("unrelated")
	node2.Info().Msg("marker two")
	for !strings.Contains(strings.Join(seen, "\n"), "marker two") {
		next("marker two")
	}
	if s := strings.Join(seen, "\n"); strings.Count(s, "marker one") != 1 || strings.Contains(s, "unrelated") {
		t.Errorf("the follow stream repeated a line or let one through its search:\n%s", s)
	}
}

func compact(b []byte) string {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return string(b)
	}
	return out.String()
}

func jsonNum(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

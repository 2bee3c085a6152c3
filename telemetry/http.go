package telemetry

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/internal/httpjson"
)

//go:embed web
var webFiles embed.FS

// HandlerConfig sets up [Handler].
type HandlerConfig struct {
	// Metrics is what GET /metrics serves. Default NewRegistry(node).
	Metrics prometheus.Gatherer
	// Push is how often the event stream sends a snapshot. Default 500ms.
	Push time.Duration
	// Timeout bounds each request's wait for the node's protocols.
	// Default 5s.
	Timeout time.Duration
	// NotFound answers the paths Handler does not serve. Default a JSON
	// 404.
	NotFound http.Handler
}

// Handler serves a node's dashboard, metrics and telemetry over HTTP:
//
//	GET /                         the dashboard (HTML, CSS and JS embedded in the binary)
//	GET /static/...               its assets
//	GET /metrics                  Prometheus text format
//	GET /v1/telemetry             the node's Snapshot of the cluster (JSON)
//	GET /v1/telemetry/events      server-sent events: a "snapshot" event every Push
//	GET /v1/alerts                the node's alert history: active alerts first, then by start, newest first
//	GET /v1/logs/{node}?limit=100&level=info&q=text&since=N  a node's recent logs (any member)
//	GET /v1/logs/{node}/follow?limit=200&level=info&q=text  server-sent events: "lines" with the
//	                              latest lines, then those written since, every Push
//	GET /v1/telemetry/history?window=15m&node=NAME&since=MS  the members' figures over time (History),
//	                              after since (milliseconds since the epoch) if given
//	GET /v1/telemetry/raft        the raft group as the node sees it, with every member's view (RaftPanel)
//
// The dashboard at / takes ?static=1: it loads the snapshot and the
// history once, draws them and opens no event stream, so the page settles
// (for screenshots, or a headless browser with a virtual-time budget);
// it marks the <html> element data-settled="true" once drawn.
//
// Each path answers GET and HEAD; another method gets 405 with Allow, and
// a query parameter the path does not take (or one that does not parse)
// 400. Errors are {"error", "code"} (package internal/httpjson): 400 for a
// bad limit, level, search (over MaxLogSearch bytes, or with control
// characters), since (not a decimal uint64) or window (not a duration
// within what the node keeps), 404 for a node that is not a member (or is
// unreachable) or keeps no logs, 503 when the telemetry protocol does not
// answer, 504 when the node asked for logs does not.
//
// The event stream lasts as long as its request, beyond the server's read
// and write timeouts (it lifts them with http.ResponseController): to end
// the streams when the server shuts down, give the server a BaseContext
// that is cancelled on shutdown (http.Server.RegisterOnShutdown).
func Handler(node *actors.Node, cfg HandlerConfig) http.Handler {
	if cfg.Metrics == nil {
		cfg.Metrics = NewRegistry(node)
	}
	if cfg.Push <= 0 {
		cfg.Push = 500 * time.Millisecond
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.NotFound == nil {
		cfg.NotFound = httpjson.NotFound()
	}
	h := &handler{node: node, cfg: cfg}
	static, _ := fs.Sub(webFiles, "web")
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	metrics := promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	mux := http.NewServeMux()
	// "token" is RequireToken's, when the API has a token; without one, it
	// is ignored.
	mux.Handle("/{$}", get(func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(static, "index.html")
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	}, "token", "static"))
	mux.Handle("/static/", get(files.ServeHTTP))
	mux.Handle("/metrics", get(metrics.ServeHTTP))
	mux.Handle("/v1/telemetry", get(h.snapshot))
	mux.Handle("/v1/telemetry/events", get(h.events))
	mux.Handle("/v1/alerts", get(h.alerts))
	mux.Handle("/v1/logs/{node}", get(h.logs, "limit", "level", "q", "since"))
	mux.Handle("/v1/logs/{node}/follow", get(h.follow, "limit", "level", "q"))
	mux.Handle("/v1/telemetry/history", get(h.history, "window", "node", "since"))
	mux.Handle("/v1/telemetry/raft", get(h.raft))
	mux.Handle("/", cfg.NotFound)
	return mux
}

// get serves h on GET (and HEAD) only, refusing any query parameter but
// params (the query parses strictly).
func get(h http.HandlerFunc, params ...string) httpjson.Methods {
	return httpjson.Methods{http.MethodGet: func(w http.ResponseWriter, r *http.Request) {
		if _, err := httpjson.Query(r, params...); err != nil {
			httpjson.Fail(w, err)
			return
		}
		h(w, r)
	}}
}

type handler struct {
	node *actors.Node
	cfg  HandlerConfig
}

func (h *handler) snapshot(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	s, err := actors.Call(ctx, h.node, Name, SnapshotRequest{})
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (h *handler) alerts(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	list, err := actors.Call(ctx, h.node, Name, AlertsRequest{})
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// logsQuery reads a logs request's query (checked by get for unknown
// parameters); defLimit is the limit when none is given.
func logsQuery(r *http.Request, defLimit int) (LogsQuery, error) {
	q, _ := httpjson.Query(r, "limit", "level", "q", "since")
	out := LogsQuery{Node: actors.NodeName(r.PathValue("node")), Limit: defLimit, MinLevel: q.Get("level"), Search: q.Get("q")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLogLines {
			return out, fmt.Errorf("%w: limit %.40q: use a number from 1 to %d", ErrBadRequest, v, MaxLogLines)
		}
		out.Limit = n
	}
	if _, err := parseLevel(out.MinLevel); err != nil {
		return out, err
	}
	if err := checkSearch(out.Search); err != nil {
		return out, err
	}
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return out, fmt.Errorf("%w: since %.40q: use the decimal \"last\" of an earlier answer (0 to 18446744073709551615)", ErrBadRequest, v)
		}
		out.Since = n
	}
	return out, nil
}

func (h *handler) logs(w http.ResponseWriter, r *http.Request) {
	lq, err := logsQuery(r, 100)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	logs, err := actors.Call(ctx, h.node, Name, lq)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, logs)
}

// follow streams a node's logs as server-sent events: a "lines" event
// with the latest limit lines (200 by default), then one with the lines
// written since, every Push while there are any; a "problem" event when
// the node does not answer (the stream goes on: it may come back).
func (h *handler) follow(w http.ResponseWriter, r *http.Request) {
	lq, err := logsQuery(r, 200)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	send, ok := startStream(w)
	if !ok {
		return
	}
	tick := time.NewTicker(h.cfg.Push)
	defer tick.Stop()
	first := true
	for {
		ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
		logs, err := actors.Call(ctx, h.node, Name, lq)
		cancel()
		switch {
		case err != nil:
			if errors.Is(err, actors.ErrNodeStopped) || r.Context().Err() != nil {
				return
			}
			if !send("problem", map[string]string{"error": err.Error()}) {
				return
			}
		case first || len(logs.Lines) > 0:
			if !send("lines", logs) {
				return
			}
			first = false
			lq.Since, lq.Limit = logs.Last, MaxLogLines
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

func (h *handler) history(w http.ResponseWriter, r *http.Request) {
	q, _ := httpjson.Query(r, "window", "node", "since")
	var req HistoryRequest
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%w: since %.40q: use the last time (t, milliseconds since the epoch) of an earlier answer", ErrBadRequest, v))
			return
		}
		req.Since = n
	}
	if v := q.Get("window"); v != "" {
		d, err := time.ParseDuration(v)
		if len(v) > 32 || err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%w: window %.40q: use a duration such as 5m or 15m", ErrBadRequest, v))
			return
		}
		req.Window = d
	}
	if v := q.Get("node"); v != "" {
		if len(v) > 256 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%w: a node name of %d bytes; at most 256", ErrBadRequest, len(v)))
			return
		}
		req.Node = actors.NodeName(v)
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	hist, err := actors.Call(ctx, h.node, Name, req)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	// Columns of numbers: compact, not indented as the other answers (a
	// third of the size).
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(hist)
}

// RaftPanel is GET /v1/telemetry/raft: the raft group as one node sees
// it, and each member's own view from its latest status.
type RaftPanel struct {
	Node    actors.NodeName `json:"node"` // the node that answered
	Time    time.Time       `json:"time"`
	Group   *RaftSummary    `json:"group"` // null when the node runs no raft group
	Members []RaftMember    `json:"members"`
}

// RaftMember is one member's raft view in a [RaftPanel].
type RaftMember struct {
	Name  actors.NodeName `json:"name"`
	State string          `json:"state"` // in the answering node's SWIM view
	Stale bool            `json:"stale"` // its figures are old: not shown as current
	Raft  *RaftView       `json:"raft"`  // null: it runs no raft group, or sent no status yet
}

func (h *handler) raft(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	s, err := actors.Call(ctx, h.node, Name, SnapshotRequest{Alerts: 1})
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, raftPanel(s))
}

func raftPanel(s Snapshot) RaftPanel {
	out := RaftPanel{Node: s.Node, Time: s.Time, Group: s.Raft, Members: []RaftMember{}}
	for _, m := range s.Members {
		rm := RaftMember{Name: m.Name, State: m.State, Stale: m.Stale}
		if m.Status != nil {
			rm.Raft = m.Status.Raft
		}
		out.Members = append(out.Members, rm)
	}
	return out
}

// startStream starts a server-sent event stream: send writes one event
// (its data as JSON) and reports whether the client still listens.
func startStream(w http.ResponseWriter) (send func(event string, data any) bool, ok bool) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, errors.New("this server cannot stream events"))
		return nil, false
	}
	// A stream outlives the server's read and write timeouts by design:
	// lift them for this request (a server without them has none to lift).
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, "retry: 1000\n\n")
	flusher.Flush()
	return func(event string, data any) bool {
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, mustJSON(data)); err != nil {
			return false
		}
		flusher.Flush()
		return true
	}, true
}

// events streams the node's snapshot every Push as server-sent events, until
// the client goes away or the node stops.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	send, ok := startStream(w)
	if !ok {
		return
	}
	tick := time.NewTicker(h.cfg.Push)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
		s, err := actors.Call(ctx, h.node, Name, SnapshotRequest{})
		cancel()
		if err != nil {
			if errors.Is(err, actors.ErrNodeStopped) || r.Context().Err() != nil {
				return
			}
			if !send("problem", map[string]string{"error": err.Error()}) {
				return
			}
		} else if !send("snapshot", s) {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// statusOf maps errors to HTTP statuses.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnknownNode), errors.Is(err, ErrNoLogs):
		return http.StatusNotFound
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, actors.ErrTimeout), errors.Is(err, actors.ErrUnknownProtocol),
		errors.Is(err, actors.ErrProtocolStopped), errors.Is(err, actors.ErrNodeStopped):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return b
}

func writeError(w http.ResponseWriter, status int, err error) {
	httpjson.WriteError(w, status, "", err)
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

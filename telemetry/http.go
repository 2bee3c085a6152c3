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
//	GET /v1/logs/{node}?limit=100&level=info  a node's recent logs (any member)
//
// Each path answers GET and HEAD; another method gets 405 with Allow, and
// a query parameter the path does not take (or one that does not parse)
// 400. Errors are {"error", "code"} (package internal/httpjson): 400 for a
// bad limit or level, 404 for a node that is not a member (or is
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
	}, "token"))
	mux.Handle("/static/", get(files.ServeHTTP))
	mux.Handle("/metrics", get(metrics.ServeHTTP))
	mux.Handle("/v1/telemetry", get(h.snapshot))
	mux.Handle("/v1/telemetry/events", get(h.events))
	mux.Handle("/v1/alerts", get(h.alerts))
	mux.Handle("/v1/logs/{node}", get(h.logs, "limit", "level"))
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

func (h *handler) logs(w http.ResponseWriter, r *http.Request) {
	q, _ := httpjson.Query(r, "limit", "level") // get checked it
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLogLines {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit %q: use a number from 1 to %d", v, MaxLogLines))
			return
		}
		limit = n
	}
	level := q.Get("level")
	if _, err := parseLevel(level); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	logs, err := actors.Call(ctx, h.node, Name, LogsQuery{Node: actors.NodeName(r.PathValue("node")), Limit: limit, MinLevel: level})
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, logs)
}

// events streams the node's snapshot every Push as server-sent events, until
// the client goes away or the node stops.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, errors.New("this server cannot stream events"))
		return
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
	tick := time.NewTicker(h.cfg.Push)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
		s, err := actors.Call(ctx, h.node, Name, SnapshotRequest{})
		cancel()
		var event string
		var data []byte
		if err != nil {
			if errors.Is(err, actors.ErrNodeStopped) || r.Context().Err() != nil {
				return
			}
			event, data = "problem", mustJSON(map[string]string{"error": err.Error()})
		} else {
			event, data = "snapshot", mustJSON(s)
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return
		}
		flusher.Flush()
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

package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/internal/httpjson"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/telemetry"
	"github.com/troupe-dev/troupe/transport"
)

// Config sets up the API.
type Config struct {
	// MaxBodyBytes caps a request body; larger ones get 413. Default 2 MiB.
	MaxBodyBytes int64
	// Timeout caps the wait for the node's protocols per request; it ends
	// with 503 (504 when a job's contact does not answer a forwarded
	// cancellation). Default 5s.
	Timeout time.Duration
	// Metrics is what GET /metrics serves. Default
	// telemetry.NewRegistry(node).
	Metrics prometheus.Gatherer
}

// New returns the HTTP API of node, which must run the membership,
// election and jobs protocols (and telemetry, for the dashboard and the
// telemetry endpoints). Safe for concurrent use, as http.Handler
// requires; each request asks the protocols through actors.Call.
func New(node *actors.Node, cfg Config) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 2 << 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	s := &server{node: node, cfg: cfg}
	mux := http.NewServeMux()
	mux.Handle("/v1/jobs", httpjson.Methods{http.MethodGet: s.listJobs, http.MethodPost: s.submit})
	mux.Handle("/v1/jobs/{id}", httpjson.Methods{http.MethodGet: s.jobStatus, http.MethodDelete: s.cancel})
	mux.Handle("/v1/members", httpjson.Methods{http.MethodGet: s.members})
	mux.Handle("/v1/leader", httpjson.Methods{http.MethodGet: s.leader})
	mux.Handle("/v1/keys", httpjson.Methods{http.MethodGet: s.keys})
	// The dashboard, /metrics and the telemetry endpoints.
	mux.Handle("/", telemetry.Handler(node, telemetry.HandlerConfig{Metrics: cfg.Metrics, Timeout: cfg.Timeout,
		NotFound: httpjson.NotFound("/v1/jobs", "/v1/members", "/v1/leader", "/v1/keys", "/v1/telemetry", "/v1/telemetry/history",
			"/v1/telemetry/raft", "/v1/alerts", "/v1/logs/{node}", "/v1/logs/{node}/follow", "/metrics", "the dashboard at /")}))
	return mux
}

type server struct {
	node *actors.Node
	cfg  Config
}

func (s *server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.Timeout)
}

// noQuery refuses a request with query parameters: none of the API's own
// endpoints takes one.
func noQuery(w http.ResponseWriter, r *http.Request) bool {
	if _, err := httpjson.Query(r); err != nil {
		httpjson.Fail(w, err)
		return false
	}
	return true
}

// SubmitRequest is the body of POST /v1/jobs.
type SubmitRequest struct {
	Runtime string          `json:"runtime"`
	Script  string          `json:"script"`
	Input   json.RawMessage `json:"input"`
	Parts   int             `json:"parts"`
	// Name is the script's file name, for errors ("cpu.star:5:3: …"):
	// at most jobs.MaxNameBytes, printable characters only.
	Name string `json:"name,omitempty"`
}

func (s *server) submit(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	var req SubmitRequest
	if err := httpjson.Decode(w, r, s.cfg.MaxBodyBytes, &req, `{"runtime", "script", "input", "parts", "name"}`); err != nil {
		httpjson.Fail(w, err)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	sub, err := actors.Call(ctx, s.node, jobs.Name, jobs.Submit{Runtime: req.Runtime, Script: req.Script, Input: req.Input, Parts: req.Parts, Name: req.Name})
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+sub.ID)
	writeJSON(w, http.StatusAccepted, sub)
}

// jobStatus answers GET /v1/jobs/{id} on any node: a node that is not the
// job's contact asks the contact. With ?wait=DURATION (a Go duration, at
// most jobs.MaxStatusWait) it is a long poll: the answer comes when the
// job has ended, or when the wait is over with the job as it is then.
func (s *server) jobStatus(w http.ResponseWriter, r *http.Request) {
	q, err := httpjson.Query(r, "wait")
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" || q.Has("wait") {
		if wait, err = time.ParseDuration(v); err != nil || wait <= 0 || wait > jobs.MaxStatusWait {
			writeError(w, http.StatusBadRequest, fmt.Errorf("wait %.40q: give a duration from 1ms to %v, such as 30s (answer when the job ends, or then)", v, jobs.MaxStatusWait))
			return
		}
	}
	id := r.PathValue("id")
	if err := validJobID(id); err != nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("%w: %v", jobs.ErrNotFound, err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait+s.cfg.Timeout)
	defer cancel()
	var st jobs.Status
	if wait > 0 {
		st, err = jobs.WaitJob(ctx, s.node, id, wait)
	} else {
		st, err = jobs.JobStatus(ctx, s.node, id)
	}
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// The headers of GET /v1/jobs that mark a partial list: the members that
// did not answer in time (their jobs are missing), and those that hold
// more jobs than one answer carries (only their newest are listed);
// comma-separated node names, absent when none.
const (
	MissingHeader   = "Troupe-Missing-Members"
	TruncatedHeader = "Troupe-Truncated-Members"
)

// listJobs answers GET /v1/jobs: the cluster's jobs, gathered from every
// live member (?scope=cluster, the default), or this node's own
// (?scope=node).
func (s *server) listJobs(w http.ResponseWriter, r *http.Request) {
	q, err := httpjson.Query(r, "scope")
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	switch q.Get("scope") {
	case "", "cluster":
		l, err := jobs.ListJobs(ctx, s.node)
		if err != nil {
			writeError(w, statusOf(err), err)
			return
		}
		if len(l.Missing) > 0 {
			w.Header().Set(MissingHeader, joinNames(l.Missing))
		}
		if len(l.Truncated) > 0 {
			w.Header().Set(TruncatedHeader, joinNames(l.Truncated))
		}
		if l.Jobs == nil {
			l.Jobs = []jobs.Status{}
		}
		writeJSON(w, http.StatusOK, l.Jobs)
	case "node":
		list, err := actors.Call(ctx, s.node, jobs.Name, jobs.ListRequest{})
		if err != nil {
			writeError(w, statusOf(err), err)
			return
		}
		writeJSON(w, http.StatusOK, list)
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("scope %.40q: use cluster (every member's jobs, the default) or node (this node's)", q.Get("scope")))
	}
}

// cancel answers DELETE /v1/jobs/{id} with the job's status at its
// contact after the cancellation, on any node: a node that is not the
// contact forwards the cancellation and waits for the contact's answer.
func (s *server) cancel(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	id := r.PathValue("id")
	if !noQuery(w, r) {
		return
	}
	if err := validJobID(id); err != nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("%w: %v", jobs.ErrNotFound, err))
		return
	}
	rep, err := jobs.CancelJob(ctx, s.node, id, "cancelled through the API of "+string(s.node.Name()))
	switch {
	case err != nil:
		writeError(w, statusOf(err), err)
	case rep.Status == nil:
		writeError(w, http.StatusInternalServerError, fmt.Errorf("cancelling %s: the jobs protocol answered without the job's status", id))
	default:
		writeJSON(w, http.StatusOK, rep.Status)
	}
}

// Member is one entry of GET /v1/members.
type Member struct {
	Name    actors.NodeName `json:"name"`
	Address string          `json:"address"`
	State   string          `json:"state"`
}

func (s *server) members(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	v, err := actors.Call(ctx, s.node, membership.Name, membership.ViewRequest{})
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	out := make([]Member, 0, len(v.Members))
	for _, m := range v.Members {
		out = append(out, Member{Name: m.Name, Address: m.Address, State: m.State.String()})
	}
	writeJSON(w, http.StatusOK, out)
}

// Leader is the body of GET /v1/leader. With no leader, Leader is "" and
// Reason says why: "no_quorum" (this node reaches fewer than a majority of
// the raft voters: Reachable of Voters, which in ReachableVoters) or
// "election" (a vote is running); Message says it in words ("no leader:
// 2 of 5 voters reachable (node-1, node-2)"). Counts are those of the raft
// group when the node runs one (docs/consensus.md, Quorum loss).
type Leader struct {
	Leader          actors.NodeName   `json:"leader"`
	Term            uint64            `json:"term"`
	Reason          string            `json:"reason,omitempty"`
	Message         string            `json:"message,omitempty"`
	Reachable       int               `json:"reachable,omitempty"`
	Voters          int               `json:"voters,omitempty"`
	ReachableVoters []actors.NodeName `json:"reachable_voters,omitempty"`
}

func (s *server) leader(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	l, err := actors.Call(ctx, s.node, election.Name, election.LeaderRequest{})
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	out := Leader{Leader: l.Name, Term: l.Term}
	if out.Leader == "" {
		out.Reason, out.Message = "election", "no leader: an election is running"
		// The raft group, when this node runs one, tells how many voters
		// it reaches.
		if st, err := actors.Call(ctx, s.node, consensus.Name, consensus.StatusRequest{}); err == nil {
			switch {
			case st.Leader != "":
				out.Leader, out.Term, out.Reason, out.Message = st.Leader, st.Term, "", ""
			case st.Reason != "":
				out.Reason, out.Reachable, out.Voters, out.ReachableVoters = st.Reason, len(st.Reachable), len(st.Voters), st.Reachable
				out.Message = fmt.Sprintf("no leader: %d of %d voters reachable (%s)", out.Reachable, out.Voters, joinNames(st.Reachable))
				if st.Reason == "election" {
					out.Message += "; an election is running"
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// statusOf maps the protocols' errors to HTTP statuses.
func statusOf(err error) int {
	switch {
	case errors.Is(err, jobs.ErrInvalidJob), errors.Is(err, jobs.ErrUnknownRuntime):
		return http.StatusBadRequest
	case errors.Is(err, jobs.ErrRuntimeDisabled):
		return http.StatusForbidden
	case errors.Is(err, jobs.ErrNotFound), errors.Is(err, jobs.ErrNotContact):
		return http.StatusNotFound
	case errors.Is(err, jobs.ErrContactLost):
		return http.StatusGone
	case errors.Is(err, jobs.ErrCancelUnanswered), errors.Is(err, jobs.ErrQueryUnanswered):
		return http.StatusGatewayTimeout
	case errors.Is(err, actors.ErrTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, actors.ErrUnknownProtocol), errors.Is(err, actors.ErrProtocolStopped), errors.Is(err, actors.ErrNodeStopped):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Error is the body of every error answer: {"error": message, "code":
// code}.
type Error = httpjson.Error

// writeError answers err with status and the status's code
// ("bad_request", "not_found", ...).
func writeError(w http.ResponseWriter, status int, err error) {
	httpjson.WriteError(w, status, "", err)
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

// validJobID checks the shape of a job id, "<contact>.<generation>.<seq>"
// (a node name, base 36, decimal), before a cancellation is forwarded to
// the contact it names.
func validJobID(id string) error {
	contact := jobs.ContactOf(id)
	if contact == "" {
		return fmt.Errorf("%q is not a job id (<contact node>.<generation>.<number>)", id)
	}
	gen, seq, _ := strings.Cut(id[len(contact)+1:], ".")
	if err := transport.ValidateName("contact node", contact); err != nil {
		return fmt.Errorf("%q is not a job id: %v", id, err)
	}
	if gen == "" || strings.Trim(gen, "0123456789abcdefghijklmnopqrstuvwxyz") != "" || seq == "" || strings.Trim(seq, "0123456789") != "" {
		return fmt.Errorf("%q is not a job id (<contact node>.<generation in base 36>.<decimal number>)", id)
	}
	return nil
}

// joinNames lists node names for people.
func joinNames(names []actors.NodeName) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

package consensus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/internal/httpjson"
	"github.com/troupe-dev/troupe/transport"
)

// HTTPTimeout bounds each request HTTPHandler serves. A key-value request
// waits a second longer, so that the protocol's own answer at its
// RequestTimeout (5 s by default), which knows whether the write left this
// node, arrives before the HTTP deadline, which does not.
const HTTPTimeout = 5 * time.Second

const kvTimeout = HTTPTimeout + time.Second

// HTTPHandler serves the key-value store through kv's node; any node
// serves (raft forwards writes and read-index requests to the leader):
//
//	GET    /v1/kv/{key}             200, the value as the body; 404 if absent
//	PUT    /v1/kv/{key}             the body is the value; 200 {"index": n}
//	PUT    /v1/kv/{key}?prev=VALUE  compare-and-set: 200 if the key held VALUE,
//	                                409 {"error", "code": "cas_failed", "found", "current"} if not
//	DELETE /v1/kv/{key}             200 {"existed": bool, "index": n}
//
// and the group's operator API:
//
//	GET    /v1/raft                   200, this node's Status as JSON
//	POST   /v1/raft/voters/{node}     add node as a voter (or promote a learner)
//	POST   /v1/raft/learners/{node}   add node as a learner
//	DELETE /v1/raft/members/{node}    remove a voter or learner
//	POST   /v1/raft/leader/{node}     transfer leadership to a voter
//
// Operator actions answer 200 {"action", "node"} once the change is
// applied (the transfer observed). Only the leader performs them: another
// node answers 409 {"error", "code": "not_leader", "leader"}.
//
// A key is the rest of the path after /v1/kv/, URL-decoded; a node is a
// name transport.ValidateName accepts. The query string parses strictly:
// a parameter other than a PUT's prev, one given twice or one that is not
// URL-encoded is refused (a compare-and-set never becomes a blind write).
// GET paths answer HEAD too. Errors are JSON {"error": message, "code":
// code} (package internal/httpjson): 400 invalid_key or bad_request, 404
// not_found (an absent key, or no such path), 405 method_not_allowed with
// an Allow header, 413 value_too_large, 500 internal, and the answers of a
// request the group could not serve ([WriteUnavailable]):
//
//	503 no_quorum    this node reaches fewer than a majority of the voters:
//	                 {"reachable": 2, "voters": 5, "reachable_voters": [...]};
//	                 nothing was applied, and retrying here cannot succeed
//	                 until voters are back (Retry-After: 5)
//	503 election     no leader, a majority reachable: a vote is running;
//	                 nothing was applied (Retry-After: 1; same fields)
//	503 not_applied  refused before it was proposed, or every copy proposed
//	                 is known dead; nothing was applied (Retry-After: 1)
//	504 unknown      a write was proposed and its outcome is unknown: it may
//	                 or may not have been applied (and may still be)
//	504 timeout      a read got no answer in time (nothing changed)
//
// no_quorum, election and not_applied replace the no_leader of earlier
// versions; unknown replaces a write's timeout (docs/consensus.md).
func HTTPHandler(kv *KV) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/kv/{key...}", httpjson.Methods{
		http.MethodGet:    func(w http.ResponseWriter, r *http.Request) { kvGet(w, r, kv) },
		http.MethodPut:    func(w http.ResponseWriter, r *http.Request) { kvPut(w, r, kv) },
		http.MethodDelete: func(w http.ResponseWriter, r *http.Request) { kvDelete(w, r, kv) },
	})
	mux.Handle("/v1/raft", httpjson.Methods{http.MethodGet: func(w http.ResponseWriter, r *http.Request) {
		if _, err := httpjson.Query(r); err != nil {
			httpjson.Fail(w, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), HTTPTimeout)
		defer cancel()
		st, err := kv.Status(ctx)
		if err != nil {
			writeReadError(w, fmt.Errorf("%w: %v", ErrTimeout, err))
			return
		}
		httpjson.Write(w, http.StatusOK, st)
	}})
	admin := func(action AdminAction) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			node := r.PathValue("node")
			if _, err := httpjson.Query(r); err != nil {
				httpjson.Fail(w, err)
				return
			}
			if err := transport.ValidateName("node", node); err != nil {
				writeError(w, fmt.Errorf("%w: %v", ErrBadRequest, err))
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), HTTPTimeout)
			defer cancel()
			if err := kv.Admin(ctx, action, actors.NodeName(node)); err != nil {
				writeError(w, err)
				return
			}
			httpjson.Write(w, http.StatusOK, map[string]any{"action": action.String(), "node": node})
		}
	}
	mux.Handle("/v1/raft/voters/{node}", httpjson.Methods{http.MethodPost: admin(AddVoter)})
	mux.Handle("/v1/raft/learners/{node}", httpjson.Methods{http.MethodPost: admin(AddLearner)})
	mux.Handle("/v1/raft/members/{node}", httpjson.Methods{http.MethodDelete: admin(RemoveNode)})
	mux.Handle("/v1/raft/leader/{node}", httpjson.Methods{http.MethodPost: admin(TransferLeader)})
	mux.Handle("/", httpjson.NotFound("/v1/kv/{key}", "/v1/raft", "/v1/raft/voters/{node}", "/v1/raft/learners/{node}",
		"/v1/raft/members/{node}", "/v1/raft/leader/{node}"))
	return mux
}

func kvGet(w http.ResponseWriter, r *http.Request, kv *KV) {
	if _, err := httpjson.Query(r); err != nil {
		httpjson.Fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), kvTimeout)
	defer cancel()
	res, err := kv.Do(ctx, Request{Op: OpGet, Key: r.PathValue("key")})
	if err != nil {
		writeReadError(w, err)
		return
	}
	w.Header().Set("X-Raft-Index", strconv.FormatUint(res.Index, 10))
	if !res.Found {
		httpjson.WriteError(w, http.StatusNotFound, httpjson.CodeNotFound, fmt.Errorf("key %q not found", r.PathValue("key")))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(res.Value)))
	_, _ = w.Write(res.Value)
}

func kvPut(w http.ResponseWriter, r *http.Request, kv *KV) {
	// The query first: a compare-and-set whose prev does not parse must
	// never become a blind write.
	q, err := httpjson.Query(r, "prev")
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	value, err := httpjson.ReadBody(w, r, maxValueSize)
	if err != nil {
		if p, ok := err.(*httpjson.Problem); ok && p.Status == http.StatusRequestEntityTooLarge {
			err = fmt.Errorf("%w: %v", ErrValueTooLarge, err)
		}
		writeError(w, err)
		return
	}
	req := Request{Op: OpPut, Key: r.PathValue("key"), Value: value}
	if q.Has("prev") {
		req.Op, req.Prev = OpCAS, []byte(q.Get("prev"))
	}
	ctx, cancel := context.WithTimeout(r.Context(), kvTimeout)
	defer cancel()
	res, err := kv.Do(ctx, req)
	switch {
	case err != nil:
		writeError(w, err)
	case req.Op == OpCAS && !res.OK:
		httpjson.WriteErrorWith(w, http.StatusConflict, "cas_failed",
			fmt.Errorf("compare-and-set failed: key %q does not hold the given prev", req.Key),
			map[string]any{"found": res.Found, "current": string(res.Value)})
	default:
		httpjson.Write(w, http.StatusOK, map[string]any{"index": res.Index})
	}
}

func kvDelete(w http.ResponseWriter, r *http.Request, kv *KV) {
	if _, err := httpjson.Query(r); err != nil {
		httpjson.Fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), kvTimeout)
	defer cancel()
	res, err := kv.Do(ctx, Request{Op: OpDelete, Key: r.PathValue("key")})
	if err != nil {
		writeError(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"existed": res.Found, "index": res.Index})
}

// writeError maps an error to its status and code; a *httpjson.Problem
// (a body that cannot be read) keeps its own.
func writeError(w http.ResponseWriter, err error) { writeErrorOf(w, err, true) }

// writeReadError is writeError for a read: a timeout changed nothing.
func writeReadError(w http.ResponseWriter, err error) { writeErrorOf(w, err, false) }

func writeErrorOf(w http.ResponseWriter, err error, write bool) {
	if WriteUnavailable(w, err, write) {
		return
	}
	status, code := http.StatusInternalServerError, httpjson.CodeInternal
	var notLeader *NotLeaderError
	var problem *httpjson.Problem
	switch {
	case errors.As(err, &notLeader):
		httpjson.WriteErrorWith(w, http.StatusConflict, "not_leader", err, map[string]any{"leader": notLeader.Leader})
		return
	case errors.Is(err, ErrInvalidKey):
		status, code = http.StatusBadRequest, "invalid_key"
	case errors.Is(err, ErrBadRequest):
		status, code = http.StatusBadRequest, httpjson.CodeBadRequest
	case errors.Is(err, ErrValueTooLarge):
		status, code = http.StatusRequestEntityTooLarge, "value_too_large"
	case errors.As(err, &problem):
		status, code = problem.Status, problem.Code
	}
	httpjson.WriteError(w, status, code, err)
}

// WriteUnavailable answers err when it says the group could not serve a
// request — not applied (no_quorum, election, not_applied: 503 with
// Retry-After) or of unknown outcome (504 unknown for a write, timeout for
// a read; write tells which) — and reports whether it did. Other errors
// are left to the caller. The lock API (package mutex) answers with it too.
func WriteUnavailable(w http.ResponseWriter, err error, write bool) bool {
	var u *UnavailableError
	switch {
	case errors.As(err, &u):
		retry := "1"
		if u.Code() == "no_quorum" {
			retry = "5"
		}
		w.Header().Set("Retry-After", retry)
		httpjson.WriteErrorWith(w, http.StatusServiceUnavailable, u.Code(), err, map[string]any{
			"reachable": len(u.Reachable), "voters": len(u.Voters), "reachable_voters": u.Reachable,
		})
	case errors.Is(err, ErrNotApplied):
		w.Header().Set("Retry-After", "1")
		httpjson.WriteError(w, http.StatusServiceUnavailable, "not_applied", err)
	case errors.Is(err, ErrTimeout), errors.Is(err, ErrStopped):
		code := "unknown"
		if !write {
			code = "timeout"
		}
		httpjson.WriteError(w, http.StatusGatewayTimeout, code, err)
	default:
		return false
	}
	return true
}

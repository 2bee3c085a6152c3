package consensus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/internal/httpjson"
	"github.com/troupe-dev/troupe/transport"
)

// HTTPTimeout bounds each request HTTPHandler serves. A request to a
// hosted machine (package kv's) waits a second longer, so that the
// protocol's own answer at its RequestTimeout (5 s by default), which knows
// whether the write left this node, arrives before the HTTP deadline,
// which does not.
const HTTPTimeout = 5 * time.Second

// HTTPHandler serves the raft group's operator API through c's node:
//
//	GET    /v1/raft                   200, this node's Status as JSON
//	POST   /v1/raft/voters/{node}     add node as a voter (or promote a learner)
//	POST   /v1/raft/learners/{node}   add node as a learner
//	DELETE /v1/raft/members/{node}    remove a voter or learner
//	POST   /v1/raft/leader/{node}     transfer leadership to a voter
//
// Operator actions answer 200 {"action", "node"} once the change is
// applied (the transfer observed). Only the leader performs them: another
// node answers 409 {"error", "code": "not_leader", "leader"}. A node is a
// name transport.ValidateName accepts; a query string is refused. Errors
// are JSON {"error": message, "code": code} (package internal/httpjson),
// as [WriteError] answers them. Package kv's HTTPHandler serves these
// paths too, beside /v1/kv/{key}.
func HTTPHandler(c *Client) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/raft", httpjson.Methods{http.MethodGet: func(w http.ResponseWriter, r *http.Request) {
		if _, err := httpjson.Query(r); err != nil {
			httpjson.Fail(w, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), HTTPTimeout)
		defer cancel()
		st, err := c.Status(ctx)
		if err != nil {
			WriteError(w, fmt.Errorf("%w: %v", ErrTimeout, err), false)
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
				WriteError(w, fmt.Errorf("%w: %v", ErrBadRequest, err), true)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), HTTPTimeout)
			defer cancel()
			if err := c.Admin(ctx, action, actors.NodeName(node)); err != nil {
				WriteError(w, err, true)
				return
			}
			httpjson.Write(w, http.StatusOK, map[string]any{"action": action.String(), "node": node})
		}
	}
	mux.Handle("/v1/raft/voters/{node}", httpjson.Methods{http.MethodPost: admin(AddVoter)})
	mux.Handle("/v1/raft/learners/{node}", httpjson.Methods{http.MethodPost: admin(AddLearner)})
	mux.Handle("/v1/raft/members/{node}", httpjson.Methods{http.MethodDelete: admin(RemoveNode)})
	mux.Handle("/v1/raft/leader/{node}", httpjson.Methods{http.MethodPost: admin(TransferLeader)})
	mux.Handle("/", httpjson.NotFound(HTTPPaths()...))
	return mux
}

// HTTPPaths are the paths HTTPHandler serves, for a 404's list.
func HTTPPaths() []string {
	return []string{"/v1/raft", "/v1/raft/voters/{node}", "/v1/raft/learners/{node}", "/v1/raft/members/{node}", "/v1/raft/leader/{node}"}
}

// WriteError answers err as JSON with its status and code: the answers of
// a request the group could not serve ([WriteUnavailable]; write tells a
// write from a read), 409 not_leader with "leader", 400 bad_request, a
// *httpjson.Problem's own (a body that cannot be read), else 500 internal.
// A machine's HTTP API maps its own errors first and hands the rest here.
func WriteError(w http.ResponseWriter, err error, write bool) {
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
	case errors.Is(err, ErrBadRequest):
		status, code = http.StatusBadRequest, httpjson.CodeBadRequest
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

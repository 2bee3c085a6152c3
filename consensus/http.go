package consensus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// HTTPTimeout bounds each request HTTPHandler serves.
const HTTPTimeout = 5 * time.Second

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
// A key is the rest of the path after /v1/kv/, URL-decoded. Errors are
// JSON {"error": message, "code": code}: 400 invalid_key or bad_request,
// 413 value_too_large, 404 not_found, 503 no_leader (with Retry-After:
// nothing was applied), 504 timeout (the write may have been applied),
// 500 internal.
func HTTPHandler(kv *KV) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/kv/{key...}", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), HTTPTimeout)
		defer cancel()
		res, err := kv.Do(ctx, Request{Op: OpGet, Key: r.PathValue("key")})
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("X-Raft-Index", strconv.FormatUint(res.Index, 10))
		if !res.Found {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": fmt.Sprintf("key %q not found", r.PathValue("key")), "code": "not_found"})
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(res.Value)))
		_, _ = w.Write(res.Value)
	})
	mux.HandleFunc("PUT /v1/kv/{key...}", func(w http.ResponseWriter, r *http.Request) {
		value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValueSize))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				err = fmt.Errorf("%w: over %d bytes", ErrValueTooLarge, tooBig.Limit)
			} else {
				err = fmt.Errorf("%w: reading the body: %v", ErrBadRequest, err)
			}
			writeError(w, err)
			return
		}
		req := Request{Op: OpPut, Key: r.PathValue("key"), Value: value}
		if r.URL.Query().Has("prev") {
			req.Op, req.Prev = OpCAS, []byte(r.URL.Query().Get("prev"))
		}
		ctx, cancel := context.WithTimeout(r.Context(), HTTPTimeout)
		defer cancel()
		res, err := kv.Do(ctx, req)
		switch {
		case err != nil:
			writeError(w, err)
		case req.Op == OpCAS && !res.OK:
			writeJSON(w, http.StatusConflict, map[string]any{
				"error":   fmt.Sprintf("compare-and-set failed: key %q does not hold the given prev", req.Key),
				"code":    "cas_failed",
				"found":   res.Found,
				"current": string(res.Value),
			})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"index": res.Index})
		}
	})
	mux.HandleFunc("DELETE /v1/kv/{key...}", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), HTTPTimeout)
		defer cancel()
		res, err := kv.Do(ctx, Request{Op: OpDelete, Key: r.PathValue("key")})
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"existed": res.Found, "index": res.Index})
	})
	mux.HandleFunc("GET /v1/raft", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), HTTPTimeout)
		defer cancel()
		st, err := kv.Status(ctx)
		if err != nil {
			writeError(w, fmt.Errorf("%w: %v", ErrTimeout, err))
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	admin := func(action AdminAction) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			node := r.PathValue("node")
			ctx, cancel := context.WithTimeout(r.Context(), HTTPTimeout)
			defer cancel()
			if err := kv.Admin(ctx, action, node); err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"action": action.String(), "node": node})
		}
	}
	mux.HandleFunc("POST /v1/raft/voters/{node}", admin(AddVoter))
	mux.HandleFunc("POST /v1/raft/learners/{node}", admin(AddLearner))
	mux.HandleFunc("DELETE /v1/raft/members/{node}", admin(RemoveNode))
	mux.HandleFunc("POST /v1/raft/leader/{node}", admin(TransferLeader))
	return mux
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// writeError maps an error to its status and code.
func writeError(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, "internal"
	var notLeader *NotLeaderError
	switch {
	case errors.As(err, &notLeader):
		writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "code": "not_leader", "leader": notLeader.Leader})
		return
	case errors.Is(err, ErrInvalidKey):
		status, code = http.StatusBadRequest, "invalid_key"
	case errors.Is(err, ErrBadRequest):
		status, code = http.StatusBadRequest, "bad_request"
	case errors.Is(err, ErrValueTooLarge):
		status, code = http.StatusRequestEntityTooLarge, "value_too_large"
	case errors.Is(err, ErrNoLeader), errors.Is(err, ErrProposalDropped):
		status, code = http.StatusServiceUnavailable, "no_leader"
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, ErrTimeout), errors.Is(err, ErrStopped):
		status, code = http.StatusGatewayTimeout, "timeout"
	}
	writeJSON(w, status, map[string]any{"error": err.Error(), "code": code})
}

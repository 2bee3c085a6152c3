package kv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/internal/httpjson"
)

// kvTimeout bounds a key-value request HTTPHandler serves: a second longer
// than consensus.HTTPTimeout, so that the protocol's own answer at its
// RequestTimeout (5 s by default), which knows whether the write left this
// node, arrives before the HTTP deadline, which does not.
const kvTimeout = consensus.HTTPTimeout + time.Second

// HTTPHandler serves the key-value store through c's node; any node
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
// request the group could not serve (consensus.WriteUnavailable):
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
func HTTPHandler(c *Client) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/kv/{key...}", httpjson.Methods{
		http.MethodGet:    func(w http.ResponseWriter, r *http.Request) { kvGet(w, r, c) },
		http.MethodPut:    func(w http.ResponseWriter, r *http.Request) { kvPut(w, r, c) },
		http.MethodDelete: func(w http.ResponseWriter, r *http.Request) { kvDelete(w, r, c) },
	})
	raft := consensus.HTTPHandler(c.Client)
	mux.Handle("/v1/raft", raft)
	mux.Handle("/v1/raft/", raft)
	mux.Handle("/", httpjson.NotFound(append([]string{"/v1/kv/{key}"}, consensus.HTTPPaths()...)...))
	return mux
}

func kvGet(w http.ResponseWriter, r *http.Request, c *Client) {
	if _, err := httpjson.Query(r); err != nil {
		httpjson.Fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), kvTimeout)
	defer cancel()
	res, err := c.Do(ctx, Request{Op: OpGet, Key: r.PathValue("key")})
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

func kvPut(w http.ResponseWriter, r *http.Request, c *Client) {
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
	res, err := c.Do(ctx, req)
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

func kvDelete(w http.ResponseWriter, r *http.Request, c *Client) {
	if _, err := httpjson.Query(r); err != nil {
		httpjson.Fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), kvTimeout)
	defer cancel()
	res, err := c.Do(ctx, Request{Op: OpDelete, Key: r.PathValue("key")})
	if err != nil {
		writeError(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"existed": res.Found, "index": res.Index})
}

// writeError maps an error to its status and code: the store's own, then
// consensus.WriteError's.
func writeError(w http.ResponseWriter, err error) { writeErrorOf(w, err, true) }

// writeReadError is writeError for a read: a timeout changed nothing.
func writeReadError(w http.ResponseWriter, err error) { writeErrorOf(w, err, false) }

func writeErrorOf(w http.ResponseWriter, err error, write bool) {
	switch {
	case errors.Is(err, ErrInvalidKey):
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_key", err)
	case errors.Is(err, ErrValueTooLarge):
		httpjson.WriteError(w, http.StatusRequestEntityTooLarge, "value_too_large", err)
	default:
		consensus.WriteError(w, err, write)
	}
}

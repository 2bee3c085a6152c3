package mutex

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

// HTTPTimeout bounds each request HTTPHandler serves: a second beyond the
// raft protocol's default RequestTimeout, so that its answer (which knows
// whether the operation left the node) comes before the HTTP deadline.
const HTTPTimeout = 6 * time.Second

// maxLockBody caps the JSON body of an acquire.
const maxLockBody = 4 << 10

// HTTPHandler serves the lease lock service through one node (any node of
// the raft group serves every request):
//
//	POST   /v1/locks/{name}          body {"ttl_ms": N} (and optionally "owner": "who")
//	                                 200 {"token": T}; 409 {"error", "code": "held", "holder", "expires_in_ms"}
//	DELETE /v1/locks/{name}?token=T  200 {"released": true}; 404 unknown_lock; 409 wrong_token
//
// ttl_ms is from MinLockTTL to MaxLockTTL (100 to 600000). A
// name is 1 to 128 bytes of letters, digits, '.', '_', '-' and '/' (the
// rest of the path, URL-decoded). The token fences the holder: it is
// greater than every token granted before, for any lock. Errors are JSON
// {"error": message, "code": code} (package internal/httpjson): 400
// invalid_name, invalid_ttl or bad_request (a body that is not one JSON
// object of those fields, a query parameter other than a release's token,
// or one that does not parse), 404 unknown_lock (or not_found for another
// path), 405 method_not_allowed with an Allow header, 409 held or
// wrong_token, 413 body_too_large (over 4 KiB), 500 internal, and the
// key-value API's answers for a request the group could not serve
// (consensus.WriteUnavailable): 503 no_quorum (with "reachable",
// "voters", "reachable_voters"), election or not_applied (with
// Retry-After: nothing was applied), 504 unknown (it may have been
// applied). They replace no_leader and timeout (docs/consensus.md).
func HTTPHandler(leases *Leases) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/locks/{name...}", httpjson.Methods{
		http.MethodPost:   func(w http.ResponseWriter, r *http.Request) { acquire(w, r, leases) },
		http.MethodDelete: func(w http.ResponseWriter, r *http.Request) { release(w, r, leases) },
	})
	mux.Handle("/", httpjson.NotFound("POST /v1/locks/{name}", "DELETE /v1/locks/{name}?token=T"))
	return mux
}

func acquire(w http.ResponseWriter, r *http.Request, leases *Leases) {
	name := r.PathValue("name")
	if _, err := httpjson.Query(r); err != nil {
		httpjson.Fail(w, err)
		return
	}
	var body struct {
		TTLms *int64 `json:"ttl_ms"`
		Owner string `json:"owner"`
	}
	if err := httpjson.Decode(w, r, maxLockBody, &body, `{"ttl_ms": N} (and optionally "owner")`); err != nil {
		httpjson.Fail(w, err)
		return
	}
	if body.TTLms == nil {
		writeError(w, fmt.Errorf(`%w: ttl_ms is missing: the lease's length in milliseconds, from %d to %d`,
			ErrInvalidTTL, MinLockTTL.Milliseconds(), MaxLockTTL.Milliseconds()))
		return
	}
	ms := *body.TTLms
	if ms < MinLockTTL.Milliseconds() || ms > MaxLockTTL.Milliseconds() {
		writeError(w, fmt.Errorf("%w: ttl_ms %d; use %d to %d", ErrInvalidTTL, ms,
			MinLockTTL.Milliseconds(), MaxLockTTL.Milliseconds()))
		return
	}
	owner := body.Owner
	if owner == "" {
		owner = "http client " + r.RemoteAddr
	}
	ctx, cancel := context.WithTimeout(r.Context(), HTTPTimeout)
	defer cancel()
	lease, err := leases.Acquire(ctx, name, time.Duration(ms)*time.Millisecond, owner)
	if err != nil {
		writeError(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"token": lease.Token})
}

func release(w http.ResponseWriter, r *http.Request, leases *Leases) {
	name := r.PathValue("name")
	q, err := httpjson.Query(r, "token")
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	token, err := strconv.ParseUint(q.Get("token"), 10, 64)
	if err != nil || token == 0 {
		writeError(w, fmt.Errorf("%w: token %q; give the holder's token as ?token=N, a positive integer",
			consensus.ErrBadRequest, q.Get("token")))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), HTTPTimeout)
	defer cancel()
	if err := leases.Release(ctx, name, token); err != nil {
		writeError(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"released": true})
}

// writeError maps an error to its status and code.
func writeError(w http.ResponseWriter, err error) {
	if consensus.WriteUnavailable(w, err, true) {
		return
	}
	status, code := http.StatusInternalServerError, httpjson.CodeInternal
	fields := map[string]any{}
	var held *LockHeldError
	switch {
	case errors.As(err, &held):
		status, code = http.StatusConflict, "held"
		fields["holder"] = held.Owner
		fields["expires_in_ms"] = held.ExpiresIn.Milliseconds()
	case errors.Is(err, ErrWrongToken):
		status, code = http.StatusConflict, "wrong_token"
	case errors.Is(err, ErrUnknownLock):
		status, code = http.StatusNotFound, "unknown_lock"
	case errors.Is(err, ErrInvalidLockName):
		status, code = http.StatusBadRequest, "invalid_name"
	case errors.Is(err, ErrInvalidTTL):
		status, code = http.StatusBadRequest, "invalid_ttl"
	case errors.Is(err, consensus.ErrBadRequest):
		status, code = http.StatusBadRequest, httpjson.CodeBadRequest
	}
	httpjson.WriteErrorWith(w, status, code, err, fields)
}

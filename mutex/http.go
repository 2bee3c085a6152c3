package mutex

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/troupe-dev/troupe/consensus"
)

// HTTPTimeout bounds each request HTTPHandler serves.
const HTTPTimeout = 5 * time.Second

// maxLockBody caps the JSON body of an acquire.
const maxLockBody = 4 << 10

// HTTPHandler serves the lease lock service through one node (any node of
// the raft group serves every request):
//
//	POST   /v1/locks/{name}          body {"ttl_ms": N} (and optionally "owner": "who")
//	                                 200 {"token": T}; 409 {"error", "code": "held", "holder", "expires_in_ms"}
//	DELETE /v1/locks/{name}?token=T  200 {"released": true}; 404 unknown_lock; 409 wrong_token
//
// ttl_ms is from consensus.MinLockTTL to MaxLockTTL (100 to 600000). A
// name is 1 to 128 bytes of letters, digits, '.', '_', '-' and '/' (the
// rest of the path, URL-decoded). The token fences the holder: it is
// greater than every token granted before, for any lock. Errors are JSON
// {"error": message, "code": code}: 400 invalid_name, invalid_ttl or
// bad_request, 404 unknown_lock, 409 held or wrong_token, 503 no_leader
// (with Retry-After: nothing was applied), 504 timeout (it may have been
// applied), 500 internal.
func HTTPHandler(leases *Leases) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/locks/{name...}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		var body struct {
			TTLms *int64 `json:"ttl_ms"`
			Owner string `json:"owner"`
		}
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLockBody))
		if err != nil {
			writeError(w, fmt.Errorf("%w: reading the body (at most %d bytes): %v", consensus.ErrBadRequest, maxLockBody, err))
			return
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeError(w, fmt.Errorf(`%w: the body must be JSON {"ttl_ms": N} (and optionally "owner"): %v`, consensus.ErrBadRequest, err))
			return
		}
		if body.TTLms == nil {
			writeError(w, fmt.Errorf(`%w: ttl_ms is missing: the lease's length in milliseconds, from %d to %d`,
				consensus.ErrInvalidTTL, consensus.MinLockTTL.Milliseconds(), consensus.MaxLockTTL.Milliseconds()))
			return
		}
		ms := *body.TTLms
		if ms < consensus.MinLockTTL.Milliseconds() || ms > consensus.MaxLockTTL.Milliseconds() {
			writeError(w, fmt.Errorf("%w: ttl_ms %d; use %d to %d", consensus.ErrInvalidTTL, ms,
				consensus.MinLockTTL.Milliseconds(), consensus.MaxLockTTL.Milliseconds()))
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
		writeJSON(w, http.StatusOK, map[string]any{"token": lease.Token})
	})
	mux.HandleFunc("DELETE /v1/locks/{name...}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		token, err := strconv.ParseUint(r.URL.Query().Get("token"), 10, 64)
		if err != nil || token == 0 {
			writeError(w, fmt.Errorf("%w: token %q; give the holder's token as ?token=N, a positive integer",
				consensus.ErrBadRequest, r.URL.Query().Get("token")))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), HTTPTimeout)
		defer cancel()
		if err := leases.Release(ctx, name, token); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"released": true})
	})
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
	body := map[string]any{}
	var held *consensus.LockHeldError
	switch {
	case errors.As(err, &held):
		status, code = http.StatusConflict, "held"
		body["holder"] = held.Owner
		body["expires_in_ms"] = held.ExpiresIn.Milliseconds()
	case errors.Is(err, consensus.ErrWrongToken):
		status, code = http.StatusConflict, "wrong_token"
	case errors.Is(err, consensus.ErrUnknownLock):
		status, code = http.StatusNotFound, "unknown_lock"
	case errors.Is(err, consensus.ErrInvalidLockName):
		status, code = http.StatusBadRequest, "invalid_name"
	case errors.Is(err, consensus.ErrInvalidTTL):
		status, code = http.StatusBadRequest, "invalid_ttl"
	case errors.Is(err, consensus.ErrBadRequest):
		status, code = http.StatusBadRequest, "bad_request"
	case errors.Is(err, consensus.ErrNoLeader), errors.Is(err, consensus.ErrProposalDropped):
		status, code = http.StatusServiceUnavailable, "no_leader"
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, consensus.ErrTimeout), errors.Is(err, consensus.ErrStopped):
		status, code = http.StatusGatewayTimeout, "timeout"
	}
	body["error"], body["code"] = err.Error(), code
	writeJSON(w, status, body)
}

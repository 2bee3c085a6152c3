package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"` // what is wrong and what is valid
	Code  string `json:"code"`  // a stable name: "bad_request", "unauthorized", ...
}

// The codes of the answers this package writes itself.
const (
	CodeBadRequest       = "bad_request"
	CodeUnauthorized     = "unauthorized"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeBodyTooLarge     = "body_too_large"
	CodeInternal         = "internal"
)

// Problem is an error that knows how it is answered: its status and code.
// Decode, ReadBody and Query return one; Fail writes it.
type Problem struct {
	Status int
	Code   string
	Msg    string
}

func (p *Problem) Error() string { return p.Msg }

// Problemf is a Problem with a formatted message.
func Problemf(status int, code, format string, args ...any) *Problem {
	return &Problem{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Write answers status with v as indented JSON.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError answers status with {"error": err, "code": code}; an empty
// code is the status's (see CodeOf).
func WriteError(w http.ResponseWriter, status int, code string, err error) {
	if code == "" {
		code = CodeOf(status)
	}
	Write(w, status, Error{Error: err.Error(), Code: code})
}

// WriteErrorWith is WriteError with more fields beside "error" and
// "code" (a 409's current value, the leader to ask).
func WriteErrorWith(w http.ResponseWriter, status int, code string, err error, fields map[string]any) {
	body := make(map[string]any, len(fields)+2)
	for k, v := range fields {
		body[k] = v
	}
	if code == "" {
		code = CodeOf(status)
	}
	body["error"], body["code"] = err.Error(), code
	Write(w, status, body)
}

// Fail answers err: a *Problem in its chain with its status and code,
// anything else as 500 "internal".
func Fail(w http.ResponseWriter, err error) {
	var p *Problem
	if errors.As(err, &p) {
		WriteError(w, p.Status, p.Code, err)
		return
	}
	WriteError(w, http.StatusInternalServerError, CodeInternal, err)
}

// CodeOf is the code of an error answer with status and no code of its
// own: "bad_request", "not_found", ...; "error" for a status without a
// name here.
func CodeOf(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeBadRequest
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusConflict:
		return "conflict"
	case http.StatusGone:
		return "gone"
	case http.StatusRequestEntityTooLarge:
		return CodeBodyTooLarge
	case http.StatusUnprocessableEntity:
		return "refused"
	case http.StatusInternalServerError:
		return CodeInternal
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusGatewayTimeout:
		return "timeout"
	}
	return "error"
}

// Methods serves a path by method: each entry handles its method, a GET
// entry HEAD too (the server drops the body), and any other method gets
// 405 with an Allow header and a JSON error.
type Methods map[string]http.HandlerFunc

func (m Methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, ok := m[r.Method]
	if !ok && r.Method == http.MethodHead {
		h, ok = m[http.MethodGet]
	}
	if ok {
		h(w, r)
		return
	}
	allow := m.Allow()
	w.Header().Set("Allow", allow)
	WriteError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
		fmt.Errorf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow))
}

// Allow lists the methods served, sorted, as an Allow header does.
func (m Methods) Allow() string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	if _, ok := m[http.MethodGet]; ok {
		if _, ok := m[http.MethodHead]; !ok {
			out = append(out, http.MethodHead)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// NotFound answers every request with a JSON 404 naming the method and
// path, and the endpoints there are (see, e.g. "/v1/kv/{key}").
func NotFound(see ...string) http.Handler {
	hint := ""
	if len(see) > 0 {
		hint = "; endpoints here: " + strings.Join(see, ", ")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, CodeNotFound, fmt.Errorf("no such endpoint %s %s%s", r.Method, r.URL.Path, hint))
	})
}

package api

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
)

// Token is the bearer token a node's API requires. It may change while the
// node runs (a new configuration); the zero Token, or an empty one,
// requires none. Safe for concurrent use.
type Token struct{ v atomic.Pointer[string] }

// NewToken returns a Token holding s.
func NewToken(s string) *Token {
	t := &Token{}
	t.Set(s)
	return t
}

// Set replaces the token; "" turns authentication off.
func (t *Token) Set(s string) { t.v.Store(&s) }

// Get returns the token ("" for none).
func (t *Token) Get() string {
	if p := t.v.Load(); p != nil {
		return *p
	}
	return ""
}

// CookieName is the cookie a browser holds the token in (see
// RequireToken).
const CookieName = "troupe_token"

// RequireToken wraps h so that every request must carry the token as
// "Authorization: Bearer <token>" (RFC 6750): one without it, or with
// another, gets 401 with a WWW-Authenticate: Bearer header and a JSON
// error (code "unauthorized"), and never reaches h. Requests for the paths
// in open (exact paths, e.g. "/metrics") pass without it. While the token
// is empty, every request passes.
//
// A browser cannot add the header to the dashboard's requests (an
// EventSource sends none), so a GET with "?token=<token>" sets it as a
// cookie (HttpOnly, SameSite=Strict) and redirects to the same URL without
// it; from then on the cookie authenticates GET and HEAD requests, never
// others, so a page elsewhere cannot make the browser change anything.
func RequireToken(h http.Handler, token *Token, open ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := token.Get()
		if want == "" || slices.Contains(open, r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		safe := r.Method == http.MethodGet || r.Method == http.MethodHead
		// A query that does not parse carries no token here; the
		// endpoint refuses it once the request is authenticated.
		if q, err := url.ParseQuery(r.URL.RawQuery); safe && err == nil && q.Has("token") {
			if !matches(q.Get("token"), want) {
				refuse(w, true)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: CookieName, Value: want, Path: "/", HttpOnly: true,
				Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
			q.Del("token")
			u := *r.URL
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok && safe {
			if c, err := r.Cookie(CookieName); err == nil {
				got, ok = c.Value, true
			}
		}
		switch {
		case !ok || got == "":
			refuse(w, false)
		case !matches(got, want):
			refuse(w, true)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

func matches(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func refuse(w http.ResponseWriter, wrong bool) {
	if wrong {
		w.Header().Set("WWW-Authenticate", `Bearer realm="troupe", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, Error{Code: "unauthorized", Error: "the bearer token is not this node's"})
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="troupe"`)
	writeJSON(w, http.StatusUnauthorized, Error{Code: "unauthorized",
		Error: "this node's API needs a bearer token: send Authorization: Bearer <token> (node CLI: --token or TROUPE_TOKEN; a browser: open /?token=<token> once)"})
}

// ErrUnauthorized: the node refused the client's bearer token (or the
// client sent none). Client.Do wraps it.
var ErrUnauthorized = errors.New("api: unauthorized")

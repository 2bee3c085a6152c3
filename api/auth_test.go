package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/troupe-dev/troupe/api"
)

func TestRequireToken(t *testing.T) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"path":"` + r.URL.Path + `"}`))
	})
	tok := api.NewToken("s3cret")
	srv := httptest.NewServer(api.RequireToken(inner, tok, "/metrics"))
	defer srv.Close()
	get := func(path, auth string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, c := range []struct {
		path, auth string
		code       int
		challenge  string
	}{
		{"/v1/jobs", "", 401, `Bearer realm="troupe"`},
		{"/v1/jobs", "Bearer", 401, `Bearer realm="troupe"`},
		{"/v1/jobs", "Basic czNjcmV0", 401, `Bearer realm="troupe"`},
		{"/v1/jobs", "Bearer wrong", 401, `Bearer realm="troupe", error="invalid_token"`},
		{"/", "", 401, `Bearer realm="troupe"`},
		{"/v1/jobs", "Bearer s3cret", 200, ""},
		{"/metrics", "", 200, ""},
	} {
		resp, body := get(c.path, c.auth)
		if resp.StatusCode != c.code || resp.Header.Get("WWW-Authenticate") != c.challenge {
			t.Errorf("GET %s with %q: %d, WWW-Authenticate %q; want %d, %q", c.path, c.auth, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), c.code, c.challenge)
		}
		if c.code == 401 && (!strings.Contains(body, `"code": "unauthorized"`) || resp.Header.Get("Content-Type") != "application/json" || strings.Contains(body, "path")) {
			t.Errorf("GET %s with %q: body %s", c.path, c.auth, body)
		}
	}

	cl := api.NewClient(srv.URL)
	if _, err := cl.Do(context.Background(), http.MethodGet, "/v1/leader", nil, nil); !errors.Is(err, api.ErrUnauthorized) || !strings.Contains(err.Error(), "--token") {
		t.Errorf("client without a token: %v, want ErrUnauthorized with a hint", err)
	}
	cl.Token = "s3cret"
	var out map[string]string
	if _, err := cl.Do(context.Background(), http.MethodGet, "/v1/leader", nil, &out); err != nil || out["path"] != "/v1/leader" {
		t.Errorf("client with the token: %v %v", out, err)
	}

	// A new token takes over at once; an empty one opens the API.
	tok.Set("next")
	if resp, _ := get("/v1/jobs", "Bearer s3cret"); resp.StatusCode != 401 {
		t.Errorf("the old token after a change: %d", resp.StatusCode)
	}
	if resp, _ := get("/v1/jobs", "Bearer next"); resp.StatusCode != 200 {
		t.Errorf("the new token: %d", resp.StatusCode)
	}
	tok.Set("")
	if resp, _ := get("/v1/jobs", ""); resp.StatusCode != 200 {
		t.Errorf("no token configured: %d", resp.StatusCode)
	}
}

// A browser logs in once with ?token=; the cookie then authenticates its
// GETs (the dashboard's fetches and event stream), never a change.
func TestTokenCookieForBrowsers(t *testing.T) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"method":"` + r.Method + `"}`))
	})
	srv := httptest.NewServer(api.RequireToken(inner, api.NewToken("s3cret-s3cret-s3cret")))
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, err := noRedirect.Get(srv.URL + "/?token=wrong")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Fatalf("a wrong ?token=: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	resp, err = noRedirect.Get(srv.URL + "/v1/logs/n1?limit=5&token=s3cret-s3cret-s3cret")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cs := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/v1/logs/n1?limit=5" || len(cs) != 1 ||
		cs[0].Name != api.CookieName || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("?token=: %d, Location %q, cookies %+v", resp.StatusCode, resp.Header.Get("Location"), cs)
	}
	with := func(method string) int {
		req, _ := http.NewRequest(method, srv.URL+"/v1/jobs", nil)
		req.AddCookie(cs[0])
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := with(http.MethodGet); code != 200 {
		t.Errorf("GET with the cookie: %d", code)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		if code := with(m); code != 401 {
			t.Errorf("%s with the cookie only: %d, want 401", m, code)
		}
	}
}

package mutex_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/troupe-dev/troupe/mutex"
)

// TestHTTPRefusesMalformedRequests: a body with trailing data, an
// oversized body, a malformed or unknown query parameter, a wrong method
// and an unknown path are refused in the one JSON error shape, and no
// lock is granted.
func TestHTTPRefusesMalformedRequests(t *testing.T) {
	c := newRaftGroup(t, 3, 29)
	lead := raftLeader(t, c)
	srv := httptest.NewServer(mutex.HTTPHandler(leases(t, c, lead)))
	t.Cleanup(srv.Close)
	u := srv.URL + "/v1/locks/"
	for _, bad := range []struct {
		method, url, body string
		status            int
		code, part        string
	}{
		{"POST", u + "x", `{"ttl_ms": 1000} trailing`, 400, "bad_request", "one JSON object"},
		{"POST", u + "x", `{"ttl_ms": 1000}{"ttl_ms": 2000}`, 400, "bad_request", "one JSON object"},
		{"POST", u + "x", `{"ttl_ms": 1000, "owner": "` + strings.Repeat("o", 8<<10) + `"}`, 413, "body_too_large", "4096 bytes"},
		{"POST", u + "x?wait=1", `{"ttl_ms": 1000}`, 400, "bad_request", `unknown parameter "wait"`},
		{"DELETE", u + "x?token=%zz", "", 400, "bad_request", `"token"`},
		{"DELETE", u + "x?token=1;a=b", "", 400, "bad_request", "';'"},
		{"DELETE", u + "x?token=1&token=2", "", 400, "bad_request", `"token" is given twice`},
		{"DELETE", u + "x?token=1&force=1", "", 400, "bad_request", `unknown parameter "force"; valid: token`},
		{"GET", u + "x", "", 405, "method_not_allowed", "GET"},
		{"PUT", u + "x", "", 405, "method_not_allowed", "PUT"},
		{"GET", srv.URL + "/v1/lock", "", 404, "not_found", "/v1/lock"},
	} {
		r := do(t, bad.method, bad.url, bad.body)
		msg, _ := r.json["error"].(string)
		if r.status != bad.status || r.json["code"] != bad.code || !strings.Contains(msg, bad.part) {
			t.Errorf("%s %s %.40s: %d %.300s; want %d %s mentioning %q", bad.method, bad.url, bad.body, r.status, r.body, bad.status, bad.code, bad.part)
		}
	}
	req, _ := http.NewRequest("GET", u+"x", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if a := resp.Header.Get("Allow"); a != "DELETE, POST" {
		t.Errorf("GET: Allow %q, want \"DELETE, POST\"", a)
	}
	// Nothing was granted: x is free.
	if r := do(t, "POST", u+"x", `{"ttl_ms": 1000}`); r.status != 200 {
		t.Errorf("acquire of x after the refusals: %d %s", r.status, r.body)
	}
}

package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/jobs/jobstest"
	"github.com/troupe-dev/troupe/telemetry"
)

// answer is one HTTP answer, its body decoded when it is a JSON object.
type answer struct {
	status int
	header http.Header
	raw    string
	obj    map[string]any
}

func send(t *testing.T, client *http.Client, method, url, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.obj)
	return a
}

// isError tells whether a is the API's one error shape: a JSON object
// {"error": message, "code": code} with both non-empty.
func (a answer) isError() bool {
	msg, _ := a.obj["error"].(string)
	code, _ := a.obj["code"].(string)
	return strings.HasPrefix(a.header.Get("Content-Type"), "application/json") && msg != "" && code != ""
}

// TestEveryEndpointRefusesBadRequestsInJSON walks the API's endpoints
// (its own and the telemetry ones it serves) with a wrong method, an
// unknown path, an oversized or trailing-garbage body and a malformed or
// unknown query parameter: each is refused with the right status and the
// one JSON error shape; a 405 says what is allowed.
func TestEveryEndpointRefusesBadRequestsInJSON(t *testing.T) {
	cfg := jobs.DefaultConfig()
	cfg.Slots = 1
	c := jobstest.NewCluster(t, 2, cfg)
	tf, err := telemetry.New(telemetry.Config{StatusInterval: 100 * time.Millisecond, Logs: telemetry.NewLogBuffer(10)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(tf); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(c.Node("node-1"), api.Config{MaxBodyBytes: 1 << 10}))
	defer srv.Close()
	job := `{"runtime": "starlark", "script": "def split(i, n):\n  return [1]\ndef run(p):\n  return p\ndef merge(r):\n  return r\n", "input": 1, "parts": 1}`

	for _, c := range []struct {
		method, path, body string
		status             int
		allow              string // the Allow header of a 405
		part               string // in the message
	}{
		{"PUT", "/v1/jobs", "", 405, "GET, HEAD, POST", "PUT"},
		{"POST", "/v1/jobs/x.1.1", "", 405, "DELETE, GET, HEAD", "POST"},
		{"POST", "/v1/members", "", 405, "GET, HEAD", "POST"},
		{"DELETE", "/v1/leader", "", 405, "GET, HEAD", "DELETE"},
		{"POST", "/v1/telemetry", "", 405, "GET, HEAD", "POST"},
		{"PUT", "/v1/alerts", "", 405, "GET, HEAD", "PUT"},
		{"DELETE", "/v1/logs/node-1", "", 405, "GET, HEAD", "DELETE"},
		{"POST", "/metrics", "", 405, "GET, HEAD", "POST"},
		{"POST", "/", "", 405, "GET, HEAD", "POST"},
		{"GET", "/v1/nothing", "", 404, "", "/v1/nothing"},
		{"GET", "/v1/jobs/a/b", "", 404, "", "/v1/jobs/a/b"},
		{"POST", "/v1/jobs", strings.Repeat(" ", 2<<10) + job, 413, "", "1024 bytes"},
		{"POST", "/v1/jobs", job + ` {"parts": 2}`, 400, "", "one JSON object"},
		{"POST", "/v1/jobs", job + `x`, 400, "", "one JSON object"},
		{"POST", "/v1/jobs", `{"script": "x", "colour": 1}`, 400, "", "colour"},
		{"GET", "/v1/members?x=%zz", "", 400, "", `"x"`},
		{"GET", "/v1/members?verbose=1", "", 400, "", `"verbose"`},
		{"GET", "/v1/jobs?a=1;b=2", "", 400, "", "';'"},
		{"GET", "/v1/logs/node-1?limit=%zz", "", 400, "", `"limit"`},
		{"GET", "/v1/logs/node-1?limit=10&limit=20", "", 400, "", `"limit" is given twice`},
		{"GET", "/v1/logs/node-1?lines=10", "", 400, "", "limit, level"},
		{"GET", "/v1/telemetry?x=1", "", 400, "", `"x"`},
	} {
		a := send(t, srv.Client(), c.method, srv.URL+c.path, c.body)
		if a.status != c.status || !a.isError() || !strings.Contains(a.obj["error"].(string), c.part) {
			t.Errorf("%s %s %.40q: %d %.300s; want %d {error, code} mentioning %q", c.method, c.path, c.body, a.status, a.raw, c.status, c.part)
		}
		if c.allow != "" && a.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, a.header.Get("Allow"), c.allow)
		}
	}

	// HEAD answers every GET endpoint, without a body.
	for _, path := range []string{"/v1/jobs", "/v1/members", "/v1/leader", "/v1/telemetry", "/v1/alerts", "/metrics", "/"} {
		if a := send(t, srv.Client(), "HEAD", srv.URL+path, ""); a.status != 200 || a.raw != "" {
			t.Errorf("HEAD %s: %d %q, want 200 without a body", path, a.status, a.raw)
		}
	}
}

// TestCancelOfAJobThatNeverExisted: an id that is no job id at all, or
// names no job of this node, is 404, never a 202 forwarded somewhere.
func TestCancelOfAJobThatNeverExisted(t *testing.T) {
	cfg := jobs.DefaultConfig()
	cfg.Slots = 1
	c := jobstest.NewCluster(t, 2, cfg)
	srv := httptest.NewServer(api.New(c.Node("node-1"), api.Config{}))
	defer srv.Close()
	for _, id := range []string{"never", "node-2.x.y", "node-2..1", "node-2.1.-1", "node-1.abc.7", "bad%00node.1.1"} {
		a := send(t, srv.Client(), "DELETE", srv.URL+"/v1/jobs/"+id, "")
		if a.status != 404 || !a.isError() {
			t.Errorf("DELETE /v1/jobs/%s: %d %s, want 404 {error, code}", id, a.status, a.raw)
		}
	}
}

// TestUnauthorizedIsTheOneErrorShape: a 401 carries {error, code}.
func TestUnauthorizedIsTheOneErrorShape(t *testing.T) {
	h := api.RequireToken(http.NotFoundHandler(), api.NewToken("a-token-of-sixteen-chars"))
	srv := httptest.NewServer(h)
	defer srv.Close()
	a := send(t, srv.Client(), "GET", srv.URL+"/v1/members", "")
	if a.status != 401 || !a.isError() || a.obj["code"] != "unauthorized" {
		t.Errorf("no token: %d %s", a.status, a.raw)
	}
}

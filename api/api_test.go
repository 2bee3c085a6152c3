package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/jobs/jobstest"
)

const sumJob = `
def split(input, n):
    return [input[i::n] for i in range(n)]

def run(part):
    return sum_of(part)

def sum_of(xs):
    t = 0
    for x in xs:
        t += x
    return t

def merge(results):
    return {"total": sum_of(results), "parts": len(results)}
`

func do(t *testing.T, srv *httptest.Server, method, path, body string) (int, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	var obj map[string]any
	_ = json.Unmarshal(raw, &obj)
	return resp.StatusCode, obj, string(raw)
}

func TestAPI(t *testing.T) {
	cfg := jobs.DefaultConfig()
	cfg.Slots = 1
	c := jobstest.NewCluster(t, 3, cfg)
	srv := httptest.NewServer(api.New(c.Node("node-1"), api.Config{MaxBodyBytes: 64 << 10}))
	defer srv.Close()
	other := httptest.NewServer(api.New(c.Node("node-2"), api.Config{}))
	defer other.Close()

	body, _ := json.Marshal(map[string]any{"runtime": "starlark", "script": sumJob, "input": []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, "parts": 3})
	code, obj, raw := do(t, srv, "POST", "/v1/jobs", string(body))
	if code != http.StatusAccepted || obj["id"] == nil {
		t.Fatalf("submit: %d %s", code, raw)
	}
	id := obj["id"].(string)
	var st map[string]any
	actortest.Eventually(t, 20*time.Second, "the job succeeds", func() bool {
		code, st, raw = do(t, srv, "GET", "/v1/jobs/"+id, "")
		return code == 200 && st["state"] != "pending" && st["state"] != "running"
	})
	for _, k := range []string{"id", "state", "parts_total", "parts_done", "result", "error"} {
		if _, ok := st[k]; !ok {
			t.Errorf("status lacks %q: %s", k, raw)
		}
	}
	if st["state"] != "succeeded" || st["parts_total"] != 3.0 || st["parts_done"] != 3.0 {
		t.Fatalf("status: %s", raw)
	}
	if res, _ := json.Marshal(st["result"]); string(res) != `{"parts":3,"total":55}` {
		t.Errorf("result %s, want total 55 in 3 parts", res)
	}

	code, _, raw = do(t, srv, "GET", "/v1/jobs", "")
	if code != 200 || !strings.Contains(raw, id) {
		t.Errorf("list: %d %s", code, raw)
	}
	code, obj, raw = do(t, srv, "GET", "/v1/leader", "")
	if code != 200 || obj["leader"] != "node-3" || obj["term"].(float64) < 1 {
		t.Errorf("leader: %d %s", code, raw)
	}
	code, _, raw = do(t, srv, "GET", "/v1/members", "")
	var members []api.Member
	if err := json.Unmarshal([]byte(raw), &members); code != 200 || err != nil || len(members) != 3 || members[0].Name != "node-1" || members[0].State != "alive" {
		t.Errorf("members: %d %s", code, raw)
	}

	// Cancelling through another node answers with the contact's status.
	long, _ := json.Marshal(map[string]any{"script": spinJob})
	_, obj, _ = do(t, srv, "POST", "/v1/jobs", string(long))
	longID, _ := obj["id"].(string)
	code, obj, raw = do(t, other, "DELETE", "/v1/jobs/"+longID, "")
	if code != http.StatusOK || obj["state"] != "cancelled" || obj["id"] != longID {
		t.Errorf("cancel at another node: %d %s", code, raw)
	}
	if _, st, raw = do(t, srv, "GET", "/v1/jobs/"+longID, ""); st["state"] != "cancelled" {
		t.Errorf("the job at its contact after the cancel: %s", raw)
	}

	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		says                     string
	}{
		{"malformed JSON", "POST", "/v1/jobs", `{"script": `, 400, "JSON object"},
		{"unknown field", "POST", "/v1/jobs", `{"script": "x", "sript": 1}`, 400, "sript"},
		{"unknown runtime", "POST", "/v1/jobs", `{"runtime": "lua", "script": "x"}`, 400, "unknown runtime"},
		{"exec disabled", "POST", "/v1/jobs", `{"runtime": "exec", "script": "x"}`, 403, "disabled"},
		{"empty script", "POST", "/v1/jobs", `{"input": 1}`, 400, "empty"},
		{"negative parts", "POST", "/v1/jobs", `{"script": "x", "parts": -1}`, 400, "parts"},
		{"body too large", "POST", "/v1/jobs", `{"script": "` + strings.Repeat("x", 70<<10) + `"}`, 413, "over"},
		{"unknown job", "GET", "/v1/jobs/node-1.x.99", "", 404, "no such job"},
		{"job of another contact", "GET", "/v1/jobs/node-2.x.1", "", 404, "node-2"},
		{"cancel unknown job", "DELETE", "/v1/jobs/nope", "", 404, "no such job"},
		{"method", "PUT", "/v1/jobs", "", 405, "PUT"},
		{"endpoint", "GET", "/v2/x", "", 404, "no such endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, obj, raw := do(t, srv, tc.method, tc.path, tc.body)
			msg, _ := obj["error"].(string)
			if code != tc.code || !strings.Contains(msg, tc.says) {
				t.Errorf("%d %s; want %d with an error saying %q", code, raw, tc.code, tc.says)
			}
		})
	}
}

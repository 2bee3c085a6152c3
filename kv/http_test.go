package kv_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/transport/sim"
)

type httpReply struct {
	status int
	body   string
	json   map[string]any
	header http.Header
}

func do(t *testing.T, method, url, body string) httpReply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := httpReply{status: resp.StatusCode, body: string(b), header: resp.Header}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &r.json); err != nil {
			t.Fatalf("%s %s: a JSON body that does not decode: %q", method, url, b)
		}
	}
	return r
}

func TestHTTPOnAFollower(t *testing.T) {
	g := newGroup(t, 3, 7, sim.Faults{}, nil, kv.Config{MaxKeySize: 1024, MaxValueSize: 32})
	lead := g.leader(5 * time.Second)
	follower := actors.NodeName("node-1")
	if lead == follower {
		follower = "node-2"
	}
	srv := httptest.NewServer(kv.HTTPHandler(g.kv(follower)))
	t.Cleanup(srv.Close)
	u := srv.URL + "/v1/kv/"

	if r := do(t, "GET", u+"a/b", ""); r.status != 404 || r.json["code"] != "not_found" {
		t.Fatalf("GET of an absent key: %d %s", r.status, r.body)
	}
	if r := do(t, "PUT", u+"a/b", "hello"); r.status != 200 || r.json["index"] == nil {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", u+"a/b", ""); r.status != 200 || r.body != "hello" {
		t.Fatalf("GET: %d %q, want 200 hello", r.status, r.body)
	}
	if r := do(t, "PUT", u+"a/b?prev=nope", "x"); r.status != 409 || r.json["code"] != "cas_failed" || r.json["current"] != "hello" {
		t.Fatalf("CAS with a wrong prev: %d %s, want 409 with the current value", r.status, r.body)
	}
	if r := do(t, "PUT", u+"a/b?prev=hello", "world"); r.status != 200 {
		t.Fatalf("CAS with the right prev: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", u+"a/b", ""); r.body != "world" {
		t.Fatalf("GET after CAS: %q", r.body)
	}
	if r := do(t, "DELETE", u+"a/b", ""); r.status != 200 || r.json["existed"] != true {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", u+"a/b", ""); r.status != 404 {
		t.Fatalf("GET after DELETE: %d", r.status)
	}
	// Bad input.
	for _, c := range []struct {
		method, url, body string
		status            int
		code              string
	}{
		{"PUT", u + "bad%0Akey", "v", 400, "invalid_key"},
		{"GET", u + "bad%7Fkey", "", 400, "invalid_key"},
		{"PUT", u + "big", strings.Repeat("x", 33), 413, "value_too_large"},
		{"PUT", u + "huge", strings.Repeat("x", 2<<20), 413, "value_too_large"},
		{"PUT", u + strings.Repeat("k", 2000), "v", 400, "invalid_key"},
	} {
		r := do(t, c.method, c.url, c.body)
		if r.status != c.status || r.json["code"] != c.code || r.json["error"] == "" {
			t.Errorf("%s %.60s: %d %.200s, want %d %s with a message", c.method, c.url, r.status, r.body, c.status, c.code)
		}
	}
	if r := do(t, "POST", u+"k", "v"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", r.status)
	}

	// During an election: the follower alone has no leader.
	for _, n := range g.Cluster.Names() {
		if n != follower {
			if err := g.Cluster.Crash(n); err != nil {
				t.Fatal(err)
			}
		}
	}
	actortest.Eventually(t, 5*time.Second, "the follower forgets the leader", func() bool {
		st, err := g.status(follower)
		return err == nil && st.Leader == ""
	})
	// Alone of three, it says so: no quorum, 1 of 3 voters reachable
	// (once the others have been silent for four election timeouts; an
	// election before that).
	var r httpReply
	actortest.Eventually(t, 5*time.Second, "the lone follower answers no_quorum", func() bool {
		r = do(t, "PUT", u+"k", "v")
		if r.status != 503 || (r.json["code"] != "election" && r.json["code"] != "no_quorum") {
			t.Fatalf("PUT without a leader: %d %s, want 503 election, then no_quorum", r.status, r.body)
		}
		return r.json["code"] == "no_quorum"
	})
	if r.json["reachable"] != 1.0 || r.json["voters"] != 3.0 || r.header.Get("Retry-After") == "" ||
		!strings.Contains(r.json["error"].(string), "1 of 3 voters") {
		t.Errorf("PUT without a quorum: %d %s (Retry-After %q), want 1 of 3 voters reachable", r.status, r.body, r.header.Get("Retry-After"))
	}
	if r := do(t, "GET", u+"k", ""); r.status != 503 || r.json["code"] != "no_quorum" {
		t.Errorf("GET without a quorum: %d %s, want 503 no_quorum", r.status, r.body)
	}
}

func TestHTTPOperatorAPI(t *testing.T) {
	g := newGroup(t, 3, 11, sim.Faults{}, nil)
	lead := g.leader(5 * time.Second)
	var others []actors.NodeName
	for _, n := range g.Cluster.Names() {
		if n != lead {
			others = append(others, n)
		}
	}
	leader := httptest.NewServer(kv.HTTPHandler(g.kv(lead)))
	t.Cleanup(leader.Close)
	follower := httptest.NewServer(kv.HTTPHandler(g.kv(others[0])))
	t.Cleanup(follower.Close)

	r := do(t, "GET", follower.URL+"/v1/raft", "")
	if r.status != 200 || r.json["leader"] != string(lead) || len(r.json["voters"].([]any)) != 3 {
		t.Fatalf("GET /v1/raft on a follower: %d %s, want leader %s and 3 voters", r.status, r.body, lead)
	}
	if r := do(t, "POST", follower.URL+"/v1/raft/leader/"+string(others[1]), ""); r.status != 409 || r.json["code"] != "not_leader" || r.json["leader"] != string(lead) {
		t.Fatalf("transfer on a follower: %d %s, want 409 not_leader naming %s", r.status, r.body, lead)
	}
	if r := do(t, "POST", leader.URL+"/v1/raft/leader/nobody", ""); r.status != 400 || r.json["code"] != "bad_request" {
		t.Fatalf("transfer to a non-voter: %d %s, want 400 bad_request", r.status, r.body)
	}
	if r := do(t, "POST", leader.URL+"/v1/raft/leader/"+string(others[0]), ""); r.status != 200 || r.json["action"] != "transfer-leader" {
		t.Fatalf("transfer: %d %s", r.status, r.body)
	}
	if got := g.leader(5 * time.Second); got != others[0] {
		t.Fatalf("after the transfer the leader is %s, want %s", got, others[0])
	}
	// others[0] leads now: remove the old leader through it.
	if r := do(t, "DELETE", follower.URL+"/v1/raft/members/"+string(lead), ""); r.status != 200 || r.json["action"] != "remove" {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	r = do(t, "GET", follower.URL+"/v1/raft", "")
	if voters := r.json["voters"].([]any); len(voters) != 2 {
		t.Fatalf("voters after the removal: %v, want 2", voters)
	}
}

// TestHTTPQueryIsStrict: a malformed, unknown or repeated query parameter
// is a 400 naming it, and nothing is written: a compare-and-set whose prev
// does not parse never becomes a blind write.
func TestHTTPQueryIsStrict(t *testing.T) {
	g := newGroup(t, 3, 13, sim.Faults{}, nil)
	lead := g.leader(5 * time.Second)
	srv := httptest.NewServer(kv.HTTPHandler(g.kv(lead)))
	t.Cleanup(srv.Close)
	u := srv.URL + "/v1/kv/"
	if r := do(t, "PUT", u+"k", "orig"); r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	for _, c := range []struct{ method, query, part string }{
		{"PUT", "?prev=%zz", `"prev"`},
		{"PUT", "?prev=orig;x=1", "';'"},
		{"PUT", "?prev=orig&prev=other", `"prev" is given twice`},
		{"PUT", "?prve=orig", `unknown parameter "prve"; valid: prev`},
		{"PUT", "?%zz=orig", "%zz"},
		{"GET", "?limit=%zz", `"limit"`},
		{"GET", "?limit=5", `unknown parameter "limit"`},
		{"DELETE", "?prev=orig", `unknown parameter "prev"`},
	} {
		r := do(t, c.method, u+"k"+c.query, "blind")
		msg, _ := r.json["error"].(string)
		if r.status != 400 || r.json["code"] != "bad_request" || !strings.Contains(msg, c.part) {
			t.Errorf("%s k%s: %d %s, want 400 bad_request mentioning %q", c.method, c.query, r.status, r.body, c.part)
		}
	}
	if r := do(t, "GET", u+"k", ""); r.status != 200 || r.body != "orig" {
		t.Errorf("after the refused requests: %d %q, want orig", r.status, r.body)
	}
}

// TestHTTPAdminRefusesBadNodeNames: the operator API takes only names
// transport.ValidateName accepts, and says the rule.
func TestHTTPAdminRefusesBadNodeNames(t *testing.T) {
	g := newGroup(t, 3, 17, sim.Faults{}, nil)
	lead := g.leader(5 * time.Second)
	srv := httptest.NewServer(kv.HTTPHandler(g.kv(lead)))
	t.Cleanup(srv.Close)
	for _, name := range []string{"bad%00name", "..%2F..%2Fetc", strings.Repeat("n", 3000), "a%20b"} {
		for _, path := range []string{"/v1/raft/voters/", "/v1/raft/learners/", "/v1/raft/leader/"} {
			r := do(t, "POST", srv.URL+path+name, "")
			msg, _ := r.json["error"].(string)
			if r.status != 400 || r.json["code"] != "bad_request" || !strings.Contains(msg, "node name") {
				t.Errorf("POST %s%.40s: %d %.300s, want 400 bad_request naming the rule", path, name, r.status, r.body)
			}
		}
		if r := do(t, "DELETE", srv.URL+"/v1/raft/members/"+name, ""); r.status != 400 {
			t.Errorf("DELETE /v1/raft/members/%.40s: %d %.300s, want 400", name, r.status, r.body)
		}
	}
	r := do(t, "GET", srv.URL+"/v1/raft", "")
	voters, _ := r.json["voters"].([]any)
	if learners, _ := r.json["learners"].([]any); len(voters) != 3 || len(learners) != 0 {
		t.Errorf("the group changed: %s", r.body)
	}
}

// TestHTTPRefusalsAreJSON: a wrong method is a 405 with Allow, an unknown
// path a 404, both in the one error shape.
func TestHTTPRefusalsAreJSON(t *testing.T) {
	g := newGroup(t, 1, 19, sim.Faults{}, nil)
	lead := g.leader(5 * time.Second)
	srv := httptest.NewServer(kv.HTTPHandler(g.kv(lead)))
	t.Cleanup(srv.Close)
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"POST", "/v1/kv/k", 405, "DELETE, GET, HEAD, PUT"},
		{"PUT", "/v1/raft", 405, "GET, HEAD"},
		{"GET", "/v1/raft/voters/n1", 405, "POST"},
		{"POST", "/v1/raft/members/n1", 405, "DELETE"},
		{"GET", "/v1/raft/nothing", 404, ""},
		{"GET", "/v1/kvx", 404, ""},
	} {
		r := do(t, c.method, srv.URL+c.path, "")
		msg, _ := r.json["error"].(string)
		code, _ := r.json["code"].(string)
		if r.status != c.status || msg == "" || code == "" {
			t.Errorf("%s %s: %d %q, want %d {error, code}", c.method, c.path, r.status, r.body, c.status)
		}
		if c.allow != "" {
			req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if a := resp.Header.Get("Allow"); a != c.allow {
				t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, a, c.allow)
			}
		}
	}
	resp, err := http.Head(srv.URL + "/v1/raft")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("HEAD /v1/raft: %d", resp.StatusCode)
	}
}

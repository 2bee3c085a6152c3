package mutex_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/examples/fencing"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/mutex"
)

// newRaftGroup runs the raft protocol hosting the lease locks and the
// key-value store on an n-node sim cluster (consensustest), with a 500ms
// request timeout.
func newRaftGroup(t testing.TB, n int, seed uint64) *cluster.Cluster {
	t.Helper()
	return newLockGroup(t, n, seed, func(c *consensus.Config) { c.RequestTimeout = 500 * time.Millisecond }).Cluster
}

// newLockGroup starts a raft group hosting the lease locks and the
// key-value store.
func newLockGroup(t testing.TB, n int, seed uint64, tweak func(*consensus.Config)) *consensustest.Group {
	t.Helper()
	return consensustest.Start(t, consensustest.Options{Nodes: n, Seed: seed, Config: tweak,
		Machines: []consensus.Machine{kv.DefaultMachine(), mutex.LockMachine()}})
}

// raftLeader waits until every running node names the same leader.
func raftLeader(t testing.TB, c *cluster.Cluster) actors.NodeName {
	t.Helper()
	g := &consensustest.Group{T: t, Cluster: c}
	return g.Leader(10 * time.Second)
}

func leases(t testing.TB, c *cluster.Cluster, node actors.NodeName) *mutex.Leases {
	t.Helper()
	n := c.Node(node)
	if n == nil {
		t.Fatalf("node %s not running", node)
	}
	l, err := mutex.NewLeases(n)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestCrashedHolderLosesTheLockAfterItsTTL: a holder crashes with the
// lock; another client gets it once the TTL has run, never before, with a
// greater token; the example store refuses the old holder's write.
func TestCrashedHolderLosesTheLockAfterItsTTL(t *testing.T) {
	for _, holderIsLeader := range []bool{false, true} {
		name := "holder on a follower"
		if holderIsLeader {
			name = "holder on the leader"
		}
		t.Run(name, func(t *testing.T) {
			c := newRaftGroup(t, 3, 21)
			lead := raftLeader(t, c)
			var holderNode, otherNode actors.NodeName
			for _, n := range c.Names() {
				switch {
				case (n == lead) == holderIsLeader && holderNode == "":
					holderNode = n
				case n != lead && otherNode == "":
					otherNode = n
				}
			}
			if otherNode == holderNode || otherNode == "" {
				for _, n := range c.Names() {
					if n != holderNode {
						otherNode = n
					}
				}
			}
			const ttl = 400 * time.Millisecond
			store := fencing.NewStore()
			held, err := leases(t, c, holderNode).Acquire(ctxT(t, 5*time.Second), "db", ttl, "holder")
			if err != nil {
				t.Fatal(err)
			}
			if err := store.Write("db", "by the holder", held.Token); err != nil {
				t.Fatal(err)
			}
			if err := c.Crash(holderNode); err != nil {
				t.Fatal(err)
			}
			other := leases(t, c, otherNode)
			var next mutex.Lease
			var lastErr error
			err = actortest.WaitFor(15*time.Second, func() bool {
				next, lastErr = other.Acquire(ctxT(t, 3*time.Second), "db", 10*time.Second, "successor")
				return lastErr == nil
			})
			granted := time.Now()
			if err != nil {
				t.Fatalf("the lock was not free within 15s of the holder's crash: %v", lastErr)
			}
			if granted.Before(held.Deadline) {
				t.Fatalf("granted again at %v, before the crashed holder's lease ended at %v", granted, held.Deadline)
			}
			if next.Token <= held.Token {
				t.Fatalf("the successor's token %d is not above the crashed holder's %d", next.Token, held.Token)
			}
			if err := store.Write("db", "by the successor", next.Token); err != nil {
				t.Fatal(err)
			}
			if err := store.Write("db", "late, by the crashed holder", held.Token); !errors.Is(err, fencing.ErrStaleToken) {
				t.Fatalf("the old holder's write: %v; want ErrStaleToken", err)
			}
			if v, _ := store.Read("db"); v != "by the successor" {
				t.Fatalf("db = %q", v)
			}
			t.Logf("holder on %s (leader %s) crashed; %s got the lock %v after the holder asked (TTL %v), token %d → %d",
				holderNode, lead, otherNode, granted.Sub(held.Deadline.Add(-ttl)).Round(time.Millisecond), ttl, held.Token, next.Token)
		})
	}
}

func TestLeasesRefreshAndRelease(t *testing.T) {
	c := newRaftGroup(t, 3, 22)
	raftLeader(t, c)
	l := leases(t, c, "node-1")
	lease, err := l.Acquire(ctxT(t, 5*time.Second), "cfg", 300*time.Millisecond, "me")
	if err != nil {
		t.Fatal(err)
	}
	// Refreshed over and over, a 300ms lease lives through a second.
	end := time.Now().Add(time.Second)
	for time.Now().Before(end) {
		if lease, err = l.Refresh(ctxT(t, 5*time.Second), lease, 0); err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if _, err := leases(t, c, "node-2").Acquire(ctxT(t, 5*time.Second), "cfg", time.Second, "other"); !errors.Is(err, mutex.ErrLockHeld) {
			t.Fatalf("acquire of a refreshed lease: %v; want mutex.ErrLockHeld", err)
		}
	}
	if err := l.Release(ctxT(t, 5*time.Second), "cfg", lease.Token+1); !errors.Is(err, mutex.ErrWrongToken) {
		t.Errorf("release with a wrong token: %v", err)
	}
	if err := l.Release(ctxT(t, 5*time.Second), "cfg", lease.Token); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctxT(t, 5*time.Second), "cfg", lease.Token); !errors.Is(err, mutex.ErrUnknownLock) {
		t.Errorf("second release: %v; want mutex.ErrUnknownLock", err)
	}
	if _, err := l.Refresh(ctxT(t, 5*time.Second), lease, 0); !errors.Is(err, mutex.ErrUnknownLock) {
		t.Errorf("refresh after release: %v; want mutex.ErrUnknownLock", err)
	}
}

type httpReply struct {
	status int
	body   string
	json   map[string]any
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
	r := httpReply{status: resp.StatusCode, body: string(b)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &r.json); err != nil {
			t.Fatalf("%s %s: a JSON body that does not decode: %q", method, url, b)
		}
	}
	return r
}

func TestHTTP(t *testing.T) {
	c := newRaftGroup(t, 3, 23)
	lead := raftLeader(t, c)
	follower := actors.NodeName("node-1")
	if lead == follower {
		follower = "node-2"
	}
	srv := httptest.NewServer(mutex.HTTPHandler(leases(t, c, follower)))
	t.Cleanup(srv.Close)
	u := srv.URL + "/v1/locks/"

	r := do(t, "POST", u+"jobs/nightly", `{"ttl_ms": 5000}`)
	tok, ok := r.json["token"].(float64)
	if r.status != 200 || !ok || tok <= 0 || len(r.json) != 1 {
		t.Fatalf("acquire: %d %s; want 200 {\"token\": N}", r.status, r.body)
	}
	r = do(t, "POST", u+"jobs/nightly", `{"ttl_ms": 1000, "owner": "someone else"}`)
	if r.status != 409 || r.json["code"] != "held" || !strings.HasPrefix(r.json["holder"].(string), "http client 127.0.0.1:") {
		t.Fatalf("acquire of a held lock: %d %s; want 409 held naming the holder", r.status, r.body)
	}
	if ms := r.json["expires_in_ms"].(float64); ms <= 0 || ms > 5000 {
		t.Errorf("expires_in_ms %v; want in (0, 5000]", ms)
	}
	if _, leaks := r.json["token"]; leaks {
		t.Error("a refusal shows the holder's token, which would let anyone release it")
	}
	tokStr := func(v float64) string { return strconv.FormatUint(uint64(v), 10) }
	if r := do(t, "DELETE", u+"jobs/nightly?token="+tokStr(tok+1), ""); r.status != 409 || r.json["code"] != "wrong_token" {
		t.Errorf("release with a wrong token: %d %s; want 409 wrong_token", r.status, r.body)
	}
	if r := do(t, "DELETE", u+"jobs/nightly?token="+tokStr(tok), ""); r.status != 200 || r.json["released"] != true {
		t.Fatalf("release: %d %s", r.status, r.body)
	}
	if r := do(t, "DELETE", u+"jobs/nightly?token="+tokStr(tok), ""); r.status != 404 || r.json["code"] != "unknown_lock" {
		t.Errorf("release of a free lock: %d %s; want 404 unknown_lock", r.status, r.body)
	}
	r = do(t, "POST", u+"jobs/nightly", `{"ttl_ms": 100, "owner": "second"}`)
	if tok2, _ := r.json["token"].(float64); r.status != 200 || tok2 <= tok {
		t.Errorf("second acquire: %d %s; want a token above %v", r.status, r.body, tok)
	}

	for _, bad := range []struct {
		method, url, body string
		status            int
		code, part        string
	}{
		{"POST", u + "x", `{"ttl_ms": 99}`, 400, "invalid_ttl", "100 to 600000"},
		{"POST", u + "x", `{"ttl_ms": 600001}`, 400, "invalid_ttl", "100 to 600000"},
		{"POST", u + "x", `{"ttl_ms": -5}`, 400, "invalid_ttl", "100 to 600000"},
		{"POST", u + "x", `{}`, 400, "invalid_ttl", "ttl_ms is missing"},
		{"POST", u + "x", `{"ttl_ms": 1.5}`, 400, "bad_request", "ttl_ms"},
		{"POST", u + "x", `{"ttl": 1000}`, 400, "bad_request", "unknown field"},
		{"POST", u + "x", `not json`, 400, "bad_request", "JSON"},
		{"POST", u + "x", `{"ttl_ms": 1000, "owner": "a\u0007b"}`, 400, "bad_request", "owner"},
		{"POST", u + "bad%20name", `{"ttl_ms": 1000}`, 400, "invalid_name", "' '"},
		{"POST", u, `{"ttl_ms": 1000}`, 400, "invalid_name", "empty"},
		{"POST", u + strings.Repeat("n", 129), `{"ttl_ms": 1000}`, 400, "invalid_name", "129 bytes"},
		{"DELETE", u + "x", "", 400, "bad_request", "?token=N"},
		{"DELETE", u + "x?token=abc", "", 400, "bad_request", `"abc"`},
		{"DELETE", u + "x?token=0", "", 400, "bad_request", "positive"},
		{"DELETE", u + "never-taken?token=7", "", 404, "unknown_lock", "nobody holds"},
		{"DELETE", u + "bad%20name?token=7", "", 400, "invalid_name", "' '"},
	} {
		r := do(t, bad.method, bad.url, bad.body)
		msg, _ := r.json["error"].(string)
		if r.status != bad.status || r.json["code"] != bad.code || !strings.Contains(msg, bad.part) {
			t.Errorf("%s %s %s: %d %s; want %d %s mentioning %q", bad.method, bad.url, bad.body, r.status, r.body, bad.status, bad.code, bad.part)
		}
	}
	if r := do(t, "GET", u+"x", ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", r.status)
	}
}

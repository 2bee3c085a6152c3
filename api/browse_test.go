package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/mutex"
	"github.com/troupe-dev/troupe/transport/sim"
)

// GET /v1/keys lists the keys and held locks of the node's replica by
// prefix, paged; a bad limit, prefix or parameter gets a clear 400, a node
// without a raft group 404 no_raft.
func TestKeysByPrefix(t *testing.T) {
	c := clustertest.NewCluster(t, 2, cluster.Sim(sim.Config{Seed: 7}), cluster.Seed(7))
	cfg := consensus.DefaultConfig()
	cfg.Machines = []consensus.Machine{kv.DefaultMachine(), mutex.LockMachine()}
	cfg.DataDir, cfg.Peers, cfg.NoSync = t.TempDir(), []actors.NodeName{"node-1"}, true
	cfg.TickInterval = 10 * time.Millisecond
	rf, err := consensus.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Node("node-1").Start(rf); err != nil {
		t.Fatal(err)
	}
	kc, err := kv.NewClient(c.Node("node-1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	actortest.Eventually(t, 10*time.Second, "node-1 leads", func() bool {
		st, err := kc.Status(ctx)
		return err == nil && st.Leader == "node-1"
	})
	for _, k := range []string{"app/a", "app/b", "app/c", "zzz"} {
		if _, err := kc.Put(ctx, k, []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	leases, err := mutex.NewLeases(c.Node("node-1"))
	if err != nil {
		t.Fatal(err)
	}
	lk, err := leases.Lock(ctx, mutex.LockRequest{Op: mutex.LockAcquire, Name: "app/lock", Owner: "me", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(c.Node("node-1"), api.Config{}))
	t.Cleanup(srv.Close)
	other := httptest.NewServer(api.New(c.Node("node-2"), api.Config{}))
	t.Cleanup(other.Close)

	var b struct {
		kv.Browse
		Locks []struct {
			Name, Owner, Token string
		} `json:"locks"`
	}
	code, _, raw := do(t, srv, "GET", "/v1/keys?prefix=app/&limit=2", "")
	if code != http.StatusOK || json.Unmarshal([]byte(raw), &b) != nil {
		t.Fatalf("GET /v1/keys: %d %s", code, raw)
	}
	if len(b.Keys) != 2 || b.Keys[0].Key != "app/a" || b.Keys[0].Value != "v-app/a" || !b.More || b.Applied == 0 {
		t.Fatalf("first page: %s", raw)
	}
	// The fencing token is a decimal string, exact in a browser.
	if len(b.Locks) != 1 || b.Locks[0].Owner != "me" || b.Locks[0].Token != strings.TrimSpace(jsonUint(lk.Token)) {
		t.Fatalf("locks: %s; want app/lock held by me with token %d", raw, lk.Token)
	}
	code, _, raw = do(t, srv, "GET", "/v1/keys?prefix=app/&after=app/b", "")
	if code != http.StatusOK || !strings.Contains(raw, `"app/c"`) || strings.Contains(raw, `"app/a"`) || strings.Contains(raw, `"zzz"`) {
		t.Fatalf("second page: %d %s", code, raw)
	}

	long := url.QueryEscape(strings.Repeat("k", kv.MaxBrowsePrefix+1))
	for _, tc := range []struct{ query, want string }{
		{"limit=0", "limit"}, {"limit=1001", "limit"}, {"limit=abc", "limit"}, {"limit=99999999999999999999", "limit"},
		{"prefix=" + long, "prefix of 1025 bytes"}, {"after=" + long, "after of 1025 bytes"},
		{"pattern=x", "pattern"}, {"prefix=a&prefix=b", "prefix"}, {"prefix=%zz", ""},
	} {
		code, obj, raw := do(t, srv, "GET", "/v1/keys?"+tc.query, "")
		if code != http.StatusBadRequest || obj["code"] != "bad_request" || !strings.Contains(raw, tc.want) {
			t.Errorf("GET /v1/keys?%.60s: %d %s; want 400 bad_request naming %q", tc.query, code, raw, tc.want)
		}
	}
	if code, obj, raw := do(t, other, "GET", "/v1/keys", ""); code != http.StatusNotFound || obj["code"] != "no_raft" {
		t.Errorf("GET /v1/keys on a node without raft: %d %s; want 404 no_raft", code, raw)
	}
	if code, _, raw := do(t, srv, "POST", "/v1/keys", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/keys: %d %s; want 405", code, raw)
	}
}

func jsonUint(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

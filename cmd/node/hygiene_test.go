package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/config"
)

// TestEveryEndpointOfTheNode runs one node with the raft group and a
// token, and walks its whole API (the api package's endpoints, the
// telemetry ones, the key-value store, locks, raft, configuration and
// version) with a wrong method, an unknown path, an oversized or
// trailing-garbage body and a malformed query: each answer is the one
// JSON error shape {"error", "code"}, a 405 with Allow.
func TestEveryEndpointOfTheNode(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	const token = "walk-token-0123456789abcdef"
	flags := loopbackFlags("n1", actortest.FreePorts(t, 3))
	flags["raft.peers"], flags["node.data_dir"], flags["node.log_level"] = "n1", t.TempDir(), "error"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runNode(ctx, config.Sources{Flags: flags, Env: []string{"TROUPE_API_TOKEN_FILE=" + tokenFile}})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the node stopped with %v", err)
		}
	}()
	base := "http://" + flags["api.listen"]
	call := func(method, path, body string, auth bool) (int, http.Header, map[string]any, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var obj map[string]any
		_ = json.Unmarshal(raw, &obj)
		return resp.StatusCode, resp.Header, obj, string(raw)
	}
	actortest.Eventually(t, 20*time.Second, "the raft group has a leader", func() bool {
		c := api.NewClient(base)
		c.Token = token
		var st struct{ Leader string }
		_, err := c.Do(ctx, http.MethodGet, "/v1/raft", nil, &st)
		return err == nil && st.Leader == "n1"
	})

	for _, c := range []struct {
		method, path, body string
		status             int
		allow              string
	}{
		{"PUT", "/v1/jobs", "", 405, "GET, HEAD, POST"},
		{"PATCH", "/v1/jobs/n1.a.1", "", 405, "DELETE, GET, HEAD"},
		{"POST", "/v1/members", "", 405, "GET, HEAD"},
		{"POST", "/v1/leader", "", 405, "GET, HEAD"},
		{"POST", "/v1/telemetry", "", 405, "GET, HEAD"},
		{"POST", "/v1/telemetry/events", "", 405, "GET, HEAD"},
		{"POST", "/v1/alerts", "", 405, "GET, HEAD"},
		{"POST", "/v1/logs/n1", "", 405, "GET, HEAD"},
		{"PUT", "/metrics", "", 405, "GET, HEAD"},
		{"POST", "/v1/kv/k", "", 405, "DELETE, GET, HEAD, PUT"},
		{"POST", "/v1/raft", "", 405, "GET, HEAD"},
		{"GET", "/v1/raft/voters/n2", "", 405, "POST"},
		{"GET", "/v1/raft/members/n2", "", 405, "DELETE"},
		{"GET", "/v1/locks/l", "", 405, "DELETE, POST"},
		{"POST", "/v1/config", "", 405, "GET, HEAD, PUT"},
		{"POST", "/v1/version", "", 405, "GET, HEAD"},
		{"GET", "/v1/nothing", "", 404, ""},
		{"GET", "/v1/raft/nothing", "", 404, ""},
		{"GET", "/v1/configs", "", 404, ""},
		{"POST", "/v1/jobs", `{"script": "` + strings.Repeat("x", 3<<20) + `"}`, 413, ""},
		{"POST", "/v1/locks/l", `{"ttl_ms": 1000, "owner": "` + strings.Repeat("x", 5<<10) + `"}`, 413, ""},
		{"PUT", "/v1/kv/k", strings.Repeat("x", 2<<20), 413, ""},
		{"PUT", "/v1/config", strings.Repeat("#", 2<<20), 413, ""},
		{"POST", "/v1/jobs", `{"script": "x"} {}`, 400, ""},
		{"POST", "/v1/locks/l", `{"ttl_ms": 1000} {}`, 400, ""},
		{"PUT", "/v1/kv/k?prev=%zz", "v", 400, ""},
		{"GET", "/v1/kv/k?x=1", "", 400, ""},
		{"DELETE", "/v1/locks/l?token=%zz", "", 400, ""},
		{"GET", "/v1/logs/n1?limit=%zz", "", 400, ""},
		{"GET", "/v1/config?x=%zz", "", 400, ""},
		{"GET", "/v1/version?verbose=1", "", 400, ""},
		{"GET", "/v1/members?x=%zz", "", 400, ""},
		{"DELETE", "/v1/jobs/n1.zz.-1", "", 404, ""},
	} {
		code, header, obj, raw := call(c.method, c.path, c.body, true)
		msg, _ := obj["error"].(string)
		ecode, _ := obj["code"].(string)
		if code != c.status || msg == "" || ecode == "" || !strings.HasPrefix(header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s %.30q: %d %.200s; want %d {error, code}", c.method, c.path, c.body, code, raw, c.status)
		}
		if c.allow != "" && header.Get("Allow") != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, header.Get("Allow"), c.allow)
		}
	}
	if code, _, obj, raw := call("GET", "/v1/members", "", false); code != 401 || obj["code"] != "unauthorized" {
		t.Errorf("without the token: %d %s", code, raw)
	}
	for _, path := range []string{"/v1/members", "/v1/raft", "/v1/config", "/v1/version", "/metrics"} {
		if code, _, _, raw := call("HEAD", path, "", true); code != 200 || raw != "" {
			t.Errorf("HEAD %s: %d %q", path, code, raw)
		}
	}
}

// TestApplyRefusesControlKeys: PUT /v1/config and `node config apply`
// never turn on the exec runtime, change its command, the token or TLS:
// each is refused as a restart-only change, and a file without the token
// file does not turn authentication off.
func TestApplyRefusesControlKeys(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("the-token-0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := config.Sources{Flags: map[string]string{"node.name": "n1"}, Env: []string{"TROUPE_API_TOKEN_FILE=" + tokenFile}}
	cfg, err := config.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	// The token file comes from the file in these cases, not the environment.
	src.Env = nil
	withToken := "api:\n  token_file: " + tokenFile + "\n"
	for _, c := range []struct{ file, want string }{
		{withToken + "jobs:\n  exec: true\n  exec_cmd: [sh]\n", "jobs.exec cannot change at run time; restart the node with the new file"},
		{withToken + "jobs:\n  exec_cmd: [sh]\n", "jobs.exec_cmd cannot change at run time"},
		{"jobs:\n  slots: 3\n", "api.token cannot change at run time"},
		{"api:\n  token: another-token-0123456789\n", "api.token cannot change at run time"},
	} {
		t.Run("", func(t *testing.T) {
			r := &running{src: src, token: api.NewToken(cfg.APIToken())}
			r.cfg.Store(cfg)
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("%q was taken as a run-time change: %v", c.file, p)
				}
			}()
			_, err := r.apply(context.Background(), []byte(c.file))
			if !errors.Is(err, errRestart) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%q: %v, want a restart-only refusal saying %q", c.file, err, c.want)
			}
			if r.token.Get() != "the-token-0123456789abcdef" || r.cfg.Load() != cfg {
				t.Errorf("%q changed the running configuration", c.file)
			}
		})
	}
}

// TestOpenAPIWithoutATokenRefusesToStart: a node whose API listens beyond
// loopback without a token does not start, unless --insecure-api says so.
func TestOpenAPIWithoutATokenRefusesToStart(t *testing.T) {
	ports := actortest.FreePorts(t, 3)
	flags := loopbackFlags("n1", ports)
	flags["api.listen"] = fmt.Sprintf("0.0.0.0:%d", ports[2])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := runNode(ctx, config.Sources{Flags: flags})
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "--insecure-api") || !strings.Contains(err.Error(), "api.token") {
		t.Errorf("a token-less API on 0.0.0.0: %v, want a refusal naming api.token and --insecure-api", err)
	}
}

// TestSlowBodyIsCutOff: a client that trickles its body is cut off by the
// server's read timeout instead of holding the connection.
func TestSlowBodyIsCutOff(t *testing.T) {
	lim := defaultServerLimits()
	lim.Read = 100 * time.Millisecond
	read := make(chan error, 1)
	srv := newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		read <- err
	}), lim)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close(); <-served }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers and 2 bytes of the 100 promised, then nothing.
	if _, err := io.WriteString(conn, "PUT /v1/kv/k HTTP/1.1\r\nHost: n1\r\nContent-Length: 100\r\n\r\nab"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-read:
		if err == nil {
			t.Error("the handler read a whole body the client never sent")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server still waits for the body after 10s; its read timeout is 100ms")
	}
}

// TestBinaryDoesNotLinkTheTestKit: the node binary links neither package
// testing nor the test kits (they register test flags and carry test-only
// code paths into production).
func TestBinaryDoesNotLinkTheTestKit(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "testing" || strings.HasSuffix(dep, "test") && strings.HasPrefix(dep, "github.com/troupe-dev/troupe/") {
			t.Errorf("cmd/node links %s", dep)
		}
	}
}

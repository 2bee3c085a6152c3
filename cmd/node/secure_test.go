package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/config"
	"github.com/troupe-dev/troupe/membership"
)

const (
	token1 = "first-token-0123456789abcdef"
	token2 = "second-token-0123456789abcdef"
)

var (
	gossipKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	otherKey  = base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
)

// secureFile is a node's configuration file: mutual TLS with the
// certificates in dir, a gossip key, an API token, and its jobs slots.
func secureFile(t *testing.T, dir, certs, name, key, token string, slots int) string {
	t.Helper()
	text := fmt.Sprintf(`# %s
membership:
  gossip_key: %s
jobs:
  slots: %d
api:
  token: %s
  open_paths: [/v1/version]
tls:
  ca: %s/ca.crt
  cert: %s/%s.crt
  key: %s/%s.key
`, name, key, slots, token, certs, certs, name, certs, name)
	p := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSecuredCluster runs two nodes with mutual TLS, a gossip key and an
// API token from their configuration files, and checks every door: a node
// of another CA and a node with another gossip key cannot join, the API
// refuses calls without the token, a new configuration applies live keys
// and refuses invalid and restart-only changes (the token among them) whole, SIGHUP reads the
// file again, and SIGTERM's path (a cancelled context) leaves the cluster.
func TestSecuredCluster(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	dir := t.TempDir()
	certs, foreign := filepath.Join(dir, "certs"), filepath.Join(dir, "foreign")
	if _, err := cli(t, "certs", "--out", certs, "--nodes", "n1,n2,n3"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli(t, "certs", "--out", foreign, "--nodes", "x"); err != nil {
		t.Fatal(err)
	}
	ports := actortest.FreePorts(t, 15)
	flags := func(i int, name string) map[string]string {
		f := loopbackFlags(name, ports[3*i:])
		f["node.log_level"] = "error"
		if i > 0 {
			f["membership.join"] = fmt.Sprintf("127.0.0.1:%d", ports[1])
		}
		return f
	}
	files := []string{secureFile(t, dir, certs, "n1", gossipKey, token1, 1), secureFile(t, dir, certs, "n2", gossipKey, token1, 1)}
	var cancels []context.CancelFunc
	var dones []chan error
	var apis []string
	for i, name := range []string{"n1", "n2"} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		f := flags(i, name)
		apis = append(apis, "http://"+f["api.listen"])
		go func() { done <- runNode(ctx, config.Sources{File: files[i], Flags: f}) }()
		cancels, dones = append(cancels, cancel), append(dones, done)
	}
	defer func() {
		for i, cancel := range cancels {
			cancel()
			if err := <-dones[i]; err != nil {
				t.Errorf("n%d stopped with %v", i+1, err)
			}
		}
	}()
	actortest.Eventually(t, 20*time.Second, "n1 sees n2 and both follow n2", func() bool {
		out, err := cli(t, "members", "--node", apis[0], "--token", token1)
		lead, lerr := cli(t, "leader", "--node", apis[0], "--token", token1)
		return err == nil && strings.Count(out, "alive") == 2 && lerr == nil && strings.HasPrefix(lead, "n2 term")
	})

	// The API: no token, a wrong token → 401; the CLI says what to do.
	for _, auth := range []string{"", "Bearer " + token2} {
		req, _ := http.NewRequest(http.MethodGet, apis[0]+"/v1/members", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") || !strings.Contains(string(body), `"unauthorized"`) {
			t.Errorf("GET /v1/members with %q: %d %q %s", auth, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	}
	// An open path needs no token.
	resp, err := http.Get(apis[0] + "/v1/version")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"version"`) {
		t.Errorf("GET /v1/version (open): %d %s", resp.StatusCode, body)
	}
	if _, err := cli(t, "members", "--node", apis[0]); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("members without --token: %v", err)
	}
	if _, err := cli(t, "kv", "get", "--node", apis[0], "k"); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Errorf("kv without --token: %v", err)
	}

	// A node with a certificate of another CA (and the right gossip key)
	// cannot join; nor can one of the cluster's CA with another gossip key.
	xfile := filepath.Join(dir, "x.yaml")
	x := fmt.Sprintf("membership:\n  gossip_key: %s\ntls:\n  ca: %s/ca.crt\n  cert: %s/x.crt\n  key: %s/x.key\n", gossipKey, foreign, foreign, foreign)
	if err := os.WriteFile(xfile, []byte(x), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = runNode(context.Background(), config.Sources{File: xfile, Flags: flags(2, "x")})
	if !errors.Is(err, membership.ErrCertificate) || !strings.Contains(err.Error(), "is not signed by the cluster's CA") {
		t.Errorf("a node of another CA: %v, want ErrCertificate", err)
	}
	n3file := secureFile(t, dir, certs, "n3", otherKey, token1, 1)
	err = runNode(context.Background(), config.Sources{File: n3file, Flags: flags(3, "n3")})
	if !errors.Is(err, membership.ErrKeyMismatch) {
		t.Errorf("a node with another gossip key: %v, want ErrKeyMismatch", err)
	}
	t.Logf("both refused in %v", time.Since(start))
	if out, _ := cli(t, "members", "--node", apis[1], "--token", token1); strings.Contains(out, "x") || strings.Contains(out, "n3") {
		t.Errorf("a refused node is a member:\n%s", out)
	}

	// A live change: more slots on n1. A new token is not one: the token
	// changes only with a restart (DESIGN §7), and the old one still works.
	slots := func(api, tok string) string {
		out, err := cli(t, "config", "show", "--node", api, "--token", tok)
		if err != nil {
			t.Fatalf("config show: %v", err)
		}
		var got struct {
			Config struct{ Jobs struct{ Slots json.Number } }
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("config show: %v\n%s", err, out)
		}
		return got.Config.Jobs.Slots.String()
	}
	next := secureFile(t, t.TempDir(), certs, "n1", gossipKey, token1, 3)
	out, err := cli(t, "config", "apply", "--node", apis[0], "--token", token1, next)
	if err != nil || !strings.Contains(out, "jobs.slots: 1 → 3") || strings.Contains(out, "api.token") {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if got := slots(apis[0], token1); got != "3" {
		t.Errorf("slots after apply: %s, want 3", got)
	}
	newToken := secureFile(t, t.TempDir(), certs, "n1", gossipKey, token2, 3)
	out, err = cli(t, "config", "apply", "--node", apis[0], "--token", token1, newToken)
	if err == nil || !strings.Contains(err.Error(), "api.token cannot change at run time; restart the node with the new file") ||
		!strings.Contains(err.Error(), "HTTP 409") || strings.Contains(out+err.Error(), token2) {
		t.Errorf("apply of a new token: %v\n%s", err, out)
	}
	if _, err := cli(t, "members", "--node", apis[0], "--token", token2); err == nil {
		t.Error("a token refused at run time works")
	}

	// Invalid, and restart-only: refused whole, nothing changes.
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("jobs:\n  slots: -1\n  max_parts: 5\n"), 0o600)
	if _, err := cli(t, "config", "apply", "--node", apis[0], "--token", token1, bad); err == nil ||
		!strings.Contains(err.Error(), "jobs.slots") || !strings.Contains(err.Error(), "use 1 to 1024") || !strings.Contains(err.Error(), "HTTP 400") {
		t.Errorf("an invalid file: %v", err)
	}
	restart := secureFile(t, t.TempDir(), certs, "n1", otherKey, token1, 2)
	if _, err := cli(t, "config", "apply", "--node", apis[0], "--token", token1, restart); err == nil ||
		!strings.Contains(err.Error(), "membership.gossip_key cannot change at run time") || !strings.Contains(err.Error(), "needs a restart") || !strings.Contains(err.Error(), "HTTP 409") {
		t.Errorf("a restart-only change: %v", err)
	}
	if got := slots(apis[0], token1); got != "3" {
		t.Errorf("slots after refused changes: %s, want 3 (kept)", got)
	}

	// SIGHUP: every node of this process reads its file again. n1's file
	// on disk still has 1 slot and the first token; n2's now has 4.
	secureFile(t, dir, certs, "n2", gossipKey, token1, 4)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 10*time.Second, "SIGHUP applied the files", func() bool {
		a, aerr := cli(t, "config", "show", "--node", apis[1], "--token", token1)
		b, berr := cli(t, "config", "show", "--node", apis[0], "--token", token1)
		return aerr == nil && berr == nil && strings.Contains(a, `"slots": 4`) && strings.Contains(b, `"slots": 1`)
	})

	// A graceful stop: n1 sees n2 leave (not fail).
	cancels[1]()
	if err := <-dones[1]; err != nil {
		t.Errorf("n2 stopped with %v", err)
	}
	dones[1] <- nil // for the deferred wait
	actortest.Eventually(t, 10*time.Second, "n1 sees n2 leave", func() bool {
		out, err := cli(t, "members", "--node", apis[0], "--token", token1)
		return err == nil && strings.Contains(out, "left") && strings.Count(out, "alive") == 1
	})
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/config"
)

// clientCommand is one client command of the walk: args (without --node
// and --token), and what it prints when it succeeds, or the error the API
// gives it (an unknown job, a wrong fencing token).
type clientCommand struct {
	args   []string
	want   string // in the output of a success ("" checks none)
	apiErr string // the node refuses it with this error, rather than succeeding
	either bool   // it may succeed or be refused by the node (a no-op change)
}

// TestEveryClientCommandSpeaksOneGrammar walks every command that talks to
// a node against a real one (node run in this process, its API behind a
// token): with --node and --token; with TROUPE_NODE and TROUPE_TOKEN;
// without the token; at the node's gRPC port, at its gossip port and at a
// port nothing listens on. Then it runs the built binary to check exit
// codes and messages of the same cases and of a typo.
func TestEveryClientCommandSpeaksOneGrammar(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	ports := actortest.FreePorts(t, 4) // remote, gossip, http; and one nothing listens on
	const token = "grammar-test-token-0123456789abcdef"
	flags := loopbackFlags("n1", ports)
	flags["election.elector"], flags["raft.peers"], flags["node.data_dir"] = "raft", "n1", t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runNode(ctx, config.Sources{Flags: flags, Env: []string{"TROUPE_API_TOKEN=" + token}})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node stopped with %v", err)
		}
	}()
	apiAddr, grpcAddr, gossipAddr := flags["api.listen"], flags["node.bind"], flags["membership.gossip"]
	downAddr := fmt.Sprintf("127.0.0.1:%d", ports[3])
	actortest.Eventually(t, 20*time.Second, "n1 leads its raft group", func() bool {
		out, err := cli(t, "raft", "status", "--node", apiAddr, "--token", token, "--timeout", "1s")
		return err == nil && strings.Contains(out, "(Leader)")
	})

	dir := t.TempDir()
	input, cfgFile := filepath.Join(dir, "in.json"), filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(input, []byte(`{"limit": 1000}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, []byte("node:\n  log_level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	commands := []clientCommand{
		{args: []string{"members"}, want: "n1"},
		{args: []string{"leader"}, want: "n1 term"},
		{args: []string{"status"}, want: "cluster seen from n1"},
		{args: []string{"job", "submit", "../../examples/jobs/cpu.star", "--input", input, "--parts", "2"}, want: "n1"},
		{args: []string{"job", "list"}, want: "STATE"},
		{args: []string{"job", "status", "n1.x.404"}, apiErr: "no such job"},
		{args: []string{"job", "cancel", "n1.x.404"}, apiErr: "no such job"},
		{args: []string{"kv", "put", "greeting", "hello"}, want: "ok (index"},
		{args: []string{"kv", "get", "greeting"}, want: "hello"},
		{args: []string{"kv", "del", "greeting"}, want: "deleted"},
		{args: []string{"lock", "acquire", "reports", "--ttl", "100ms"}, either: true}, // the second walk may find it held
		{args: []string{"lock", "release", "reports", "--fencing-token", "999999"}, apiErr: "hold"},
		{args: []string{"raft", "status"}, want: "voters"},
		{args: []string{"raft", "add-learner", "ghost"}, want: "ok: add-learner ghost"},
		{args: []string{"raft", "remove", "ghost"}, want: "ok: remove ghost"},
		{args: []string{"raft", "add-voter", "n1"}, either: true},
		{args: []string{"raft", "transfer", "n1"}, either: true},
		{args: []string{"config", "show"}, want: "node"},
		{args: []string{"config", "apply", cfgFile}, either: true},
	}
	// reached checks that a command got an answer from the node's API.
	reached := func(t *testing.T, how string, c clientCommand, out string, err error) {
		t.Helper()
		var unreachable *unreachableError
		switch {
		case errors.As(err, &unreachable) || err != nil && strings.Contains(strings.ToLower(err.Error()), "unauthorized"):
			t.Errorf("%s %v: %v", how, c.args, err)
		case c.apiErr != "" && (err == nil || !strings.Contains(err.Error(), c.apiErr)):
			t.Errorf("%s %v: want the node's error %q, got %v\n%s", how, c.args, c.apiErr, err, out)
		case c.apiErr == "" && !c.either && err != nil:
			t.Errorf("%s %v: %v\n%s", how, c.args, err, out)
		case err == nil && !strings.Contains(out, c.want):
			t.Errorf("%s %v printed %q, want %q in it", how, c.args, out, c.want)
		}
	}
	for _, c := range commands {
		out, err := cli(t, append(c.args, "--node", apiAddr, "--token", token)...)
		reached(t, "with --node and --token", c, out, err)
	}
	t.Run("env", func(t *testing.T) {
		t.Setenv("TROUPE_NODE", "http://"+apiAddr)
		t.Setenv("TROUPE_TOKEN", token)
		for _, c := range commands {
			out, err := cli(t, c.args...)
			reached(t, "with TROUPE_NODE and TROUPE_TOKEN", c, out, err)
		}
		// A flag wins over the variable.
		if _, err := cli(t, "kv", "get", "greeting", "--node", downAddr); err == nil || !strings.Contains(err.Error(), downAddr) {
			t.Errorf("--node over TROUPE_NODE: %v", err)
		}
	})
	for _, bad := range []struct{ how, addr, want string }{
		{"without a token", apiAddr, "unauthorized"},
		{"at the gRPC port", grpcAddr, "reaching the node at " + grpcAddr + ": it answers in binary, not HTTP: this looks like the node's gRPC port (node run --bind); the HTTP API is the address of node run --http"},
		{"at the gossip port", gossipAddr, "reaching the node at " + gossipAddr + ": it closed the connection without an HTTP answer: this looks like the node's gossip port"},
		{"at a down node", downAddr, "reaching the node at " + downAddr + ": nothing listens there (connection refused)"},
	} {
		for _, c := range commands {
			_, err := cli(t, append(c.args, "--node", bad.addr)...)
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(bad.want)) {
				t.Errorf("%v %s: want %q, got %v", c.args, bad.how, bad.want, err)
			}
		}
	}

	// The binary: exit codes and messages on stderr.
	bin := filepath.Join(t.TempDir(), "node")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, run := range []struct {
		env    []string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"TROUPE_NODE=" + apiAddr, "TROUPE_TOKEN=" + token}, []string{"kv", "put", "k", "v"}, 0, "ok (index", ""},
		{[]string{"TROUPE_NODE=" + apiAddr, "TROUPE_TOKEN=" + token}, []string{"kv", "get", "k"}, 0, "v\n", ""},
		{[]string{"TROUPE_NODE=" + apiAddr}, []string{"lock", "acquire", "x", "--ttl", "1s", "--token", token}, 0, "", ""},
		{nil, []string{"members", "--node", grpcAddr}, 1, "", "this looks like the node's gRPC port"},
		{[]string{"TROUPE_NODE=" + gossipAddr}, []string{"raft", "status"}, 1, "", "this looks like the node's gossip port"},
		{[]string{"TROUPE_NODE=" + downAddr}, []string{"leader"}, 1, "", "reaching the node at " + downAddr + ": nothing listens there"},
		{nil, []string{"job", "sbmit", "x.star"}, 1, "", `unknown command "sbmit" for "node job"; did you mean "submit"?`},
		{nil, []string{"kv", "gte", "k"}, 1, "", `did you mean "get"?`},
		{nil, []string{"raft", "stauts"}, 1, "", `did you mean "status"?`},
		{nil, []string{"lock", "aquire", "x"}, 1, "", `did you mean "acquire"?`},
		{nil, []string{"config", "shwo"}, 1, "", `did you mean "show"?`},
		{nil, []string{"demo", "brodcast"}, 1, "", `did you mean "broadcast"?`},
		{nil, []string{"membrs"}, 1, "", "members"},
		{nil, []string{"job"}, 0, "Available Commands", ""},
	} {
		cmd := exec.Command(bin, run.args...)
		cmd.Env = append(os.Environ(), "TROUPE_NODE=", "TROUPE_TOKEN=")
		cmd.Env = append(cmd.Env, run.env...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if exit := (*exec.ExitError)(nil); errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != run.code || !strings.Contains(stdout.String(), run.stdout) || !strings.Contains(stderr.String(), run.stderr) {
			t.Errorf("%v node %v: exit %d, want %d\nstdout: %s\nstderr: %s", run.env, run.args, code, run.code, stdout.String(), stderr.String())
		}
	}
}

// TestTypoInEverySubcommandFails: every command with subcommands refuses
// an unknown one, suggesting the nearest, and lists the valid ones.
func TestTypoInEverySubcommandFails(t *testing.T) {
	root := rootCmd()
	n := 0
	for _, c := range root.Commands() {
		if !c.HasSubCommands() {
			continue
		}
		n++
		sub := c.Commands()[0].Name()
		typo := sub[1:] + sub[:1] // "cancel" → "ancelc"
		_, err := cli(t, c.Name(), typo)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("unknown command %q for \"node %s\"", typo, c.Name())) ||
			!strings.Contains(err.Error(), "valid: "+sub) {
			t.Errorf("node %s %s: %v", c.Name(), typo, err)
		}
	}
	if n < 6 {
		t.Errorf("%d commands with subcommands, want job, kv, lock, raft, config, demo at least", n)
	}
}

// TestExplainSniffsAGRPCPort: however net/http failed at a gRPC port (the
// server's HTTP/2 settings read as an unsolicited response, or the
// connection ended), the hint names the gRPC port; a silent server that
// just closes stays "closed".
func TestExplainSniffsAGRPCPort(t *testing.T) {
	serve := func(greeting []byte) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write(greeting)
				_ = c.Close()
			}
		}()
		return ln.Addr().String()
	}
	settings := []byte{0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0x40, 0}
	for _, c := range []struct {
		name, addr string
		cause      error
		want       string
	}{
		{"grpc, unsolicited response", serve(settings), errors.New("readLoopPeekFailLocked: <nil>"), hintGRPC},
		{"grpc, connection ended", serve(settings), io.EOF, hintGRPC},
		{"silent close", serve(nil), io.EOF, hintClosed},
	} {
		err := explain(&url.Error{Op: "Get", URL: "http://" + c.addr + "/v1/members", Err: c.cause})
		var ue *unreachableError
		if !errors.As(err, &ue) || ue.hint != c.want {
			t.Errorf("%s: %v; want the hint %q", c.name, err, c.want)
		}
	}
}

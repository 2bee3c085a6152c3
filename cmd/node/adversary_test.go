package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protoremote "github.com/asynkron/protoactor-go/remote"
	"github.com/hashicorp/memberlist"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/config"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
	"github.com/troupe-dev/troupe/transport/remote"
)

// raftCluster is three `node run` nodes in this process, started as the
// README starts them: a raft group of all three, the raft elector, node-2
// and node-3 joining node-1's gossip port.
type raftCluster struct {
	names                 []string
	https, binds, gossips []string // per node: "http://host:port", the node port, the gossip port
}

func startRaftCluster(t *testing.T, extra map[string]string) *raftCluster {
	t.Helper()
	ports := actortest.FreePorts(t, 9) // per node: remote, gossip, http
	c := &raftCluster{names: []string{"node-1", "node-2", "node-3"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, len(c.names))
	for i, name := range c.names {
		flags := loopbackFlags(name, ports[3*i:])
		flags["election.elector"], flags["raft.peers"], flags["node.data_dir"] = "raft", strings.Join(c.names, ","), t.TempDir()
		for k, v := range extra {
			flags[k] = v
		}
		if i > 0 {
			flags["membership.join"] = fmt.Sprintf("127.0.0.1:%d", ports[1])
		}
		c.https = append(c.https, "http://"+flags["api.listen"])
		c.binds = append(c.binds, flags["node.bind"])
		c.gossips = append(c.gossips, flags["membership.gossip"])
		go func() { done <- runNode(ctx, config.Sources{Flags: flags}) }()
	}
	t.Cleanup(func() {
		cancel()
		for range c.names {
			if err := <-done; err != nil {
				t.Errorf("node stopped with %v", err)
			}
		}
	})
	c.raftStatus(t, 30*time.Second)
	return c
}

// raftStatus waits until every node names the same raft leader, and returns
// each node's status.
func (c *raftCluster) raftStatus(t *testing.T, within time.Duration) []consensus.Status {
	t.Helper()
	var sts []consensus.Status
	actortest.Eventually(t, within, "a raft leader every node agrees on", func() bool {
		sts = sts[:0]
		for _, h := range c.https {
			var st consensus.Status
			if code, _ := doJSON(h+"/v1/raft", http.MethodGet, "", nil, &st); code != http.StatusOK || st.Leader == "" ||
				len(sts) > 0 && st.Leader != sts[0].Leader {
				return false
			}
			sts = append(sts, st)
		}
		return true
	})
	return sts
}

// doJSON sends a request and decodes a JSON answer into out (if not nil);
// it returns the status code and the raw body.
func doJSON(url, method, contentType string, body io.Reader, out any) (int, []byte) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, []byte(err.Error())
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(raw, out)
	}
	return resp.StatusCode, raw
}

// writes remembers every write the cluster acknowledged.
type writes struct {
	c     *raftCluster
	acked map[string]string
	n     int
}

// put writes a new key through node i and remembers it if acknowledged.
func (w *writes) put(t *testing.T, i int) {
	t.Helper()
	w.n++
	key, value := fmt.Sprintf("acked-%d", w.n), fmt.Sprintf("value-%d", w.n)
	actortest.Eventually(t, 20*time.Second, "a write through "+w.c.names[i], func() bool {
		code, _ := doJSON(w.c.https[i]+"/v1/kv/"+key, http.MethodPut, "", strings.NewReader(value), nil)
		return code == http.StatusOK
	})
	w.acked[key] = value
}

// check reads every acknowledged write through every node.
func (w *writes) check(t *testing.T) {
	t.Helper()
	for i, h := range w.c.https {
		for key, want := range w.acked {
			var got string
			actortest.Eventually(t, 20*time.Second, key+" through "+w.c.names[i], func() bool {
				code, body := doJSON(h+"/v1/kv/"+key, http.MethodGet, "", nil, nil)
				got = string(body)
				return code == http.StatusOK
			})
			if got != want {
				t.Errorf("%s through %s = %q, want %q", key, w.c.names[i], got, want)
			}
		}
	}
}

// alive checks that every node still answers on its HTTP API and its node
// port.
func (c *raftCluster) alive(t *testing.T, after string) {
	t.Helper()
	for i, h := range c.https {
		if code, body := doJSON(h+"/v1/members", http.MethodGet, "", nil, nil); code != http.StatusOK {
			t.Fatalf("after %s, %s's API answers %d %s", after, c.names[i], code, body)
		}
		conn, err := net.DialTimeout("tcp", c.binds[i], 5*time.Second)
		if err != nil {
			t.Fatalf("after %s, %s's node port: %v", after, c.names[i], err)
		}
		_ = conn.Close()
	}
}

// TestClusterSurvivesTheAdversarialCatalogue repeats, against a 3-node
// cluster started as the README starts it, every input of the hardening
// sweep (docs/security.md): raw gRPC calls protoactor does not implement,
// a batch protoactor would crash on, forged raft traffic, job scripts that
// bomb the stack, the heap and the clock, malformed queries and bodies,
// run-time configuration that would run code, bad names and garbage
// gossip. Afterwards every node is up and every acknowledged write is
// readable through every node.
func TestClusterSurvivesTheAdversarialCatalogue(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	c := startRaftCluster(t, map[string]string{
		"jobs.max_steps": "100000000", "jobs.part_timeout": "2s",
	})
	w := &writes{c: c, acked: map[string]string{}}
	w.put(t, 0)

	t.Run("grpc-methods-protoactor-does-not-implement", func(t *testing.T) {
		for _, bind := range c.binds {
			conn, err := grpc.Dial(bind, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			client := protoremote.NewRemotingClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := client.ListProcesses(ctx, &protoremote.ListProcessesRequest{}); err == nil {
				t.Errorf("%s: ListProcesses answered without an error", bind)
			}
			if _, err := client.GetProcessDiagnostics(ctx, &protoremote.GetProcessDiagnosticsRequest{}); err == nil {
				t.Errorf("%s: GetProcessDiagnostics answered without an error", bind)
			}
			cancel()
			_ = conn.Close()
		}
		c.alive(t, "unary gRPC calls")
	})
	w.put(t, 1)

	t.Run("grpc-terminated-without-who", func(t *testing.T) {
		for _, bind := range c.binds {
			sendRawBatch(t, bind, &protoremote.MessageBatch{
				TypeNames: []string{"actor.Terminated"},
				Targets:   []*actor.PID{{Address: bind, Id: "troupe"}},
				Envelopes: []*protoremote.MessageEnvelope{{TypeId: 0, Target: 0}},
			})
		}
		c.alive(t, "a Terminated batch with no who")
	})
	w.put(t, 2)

	t.Run("forged-raft-commit", func(t *testing.T) {
		sts := c.raftStatus(t, 20*time.Second)
		leader := sts[0].Leader
		var follower int
		for i, name := range c.names {
			if actors.NodeName(name) != leader {
				follower = i
				break
			}
		}
		// The forger claims to be the leader: plaintext gRPC lets anyone
		// send as any name, so raft must check what it steps.
		forger := forgeEndpoint(t, string(leader), c.names[follower], c.binds[follower])
		data, err := proto.Marshal(&raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(consensus.ID(leader)),
			To: proto.Uint64(consensus.ID(actors.NodeName(c.names[follower]))), Term: proto.Uint64(sts[follower].Term), Commit: proto.Uint64(1_000_000_000_000)})
		if err != nil {
			t.Fatal(err)
		}
		for range 32 {
			env := &messages.Envelope{From: string(leader), To: c.names[follower], Protocol: "raft"}
			if err := transport.MarshalPayload(env, &messages.RaftBatch{Messages: [][]byte{data}}); err != nil {
				t.Fatal(err)
			}
			if _, err := forger.Send(env); err != nil {
				t.Fatal(err)
			}
		}
		w.put(t, follower)
		c.raftStatus(t, 20*time.Second)
		c.alive(t, "forged raft heartbeats")
	})

	t.Run("job-bombs", func(t *testing.T) {
		for _, bomb := range []struct{ name, run string }{
			{"stack", `json.decode("[" * 50000000)`},
			{"heap", `[("x" * (1 << 29)) for i in range(100)]`},
			{"deep-result", "d = []\n    for i in range(250000):\n        d = [d]\n    return d"},
		} {
			script := "def split(input, n):\n    return [1]\n\ndef run(part):\n    " + bomb.run + "\n\ndef merge(results):\n    return results\n"
			body, _ := json.Marshal(map[string]any{"runtime": "starlark", "script": script, "input": nil, "parts": 1})
			var sub struct{ ID string }
			if code, raw := doJSON(c.https[1]+"/v1/jobs", http.MethodPost, "application/json", bytes.NewReader(body), &sub); code != http.StatusAccepted {
				t.Fatalf("%s bomb: submit answered %d %s", bomb.name, code, raw)
			}
			var st struct{ State, Error string }
			actortest.Eventually(t, 60*time.Second, "the "+bomb.name+" bomb's job ends", func() bool {
				code, _ := doJSON(c.https[1]+"/v1/jobs/"+sub.ID, http.MethodGet, "", nil, &st)
				return code == http.StatusOK && (st.State == "failed" || st.State == "succeeded" || st.State == "cancelled")
			})
			if st.State != "failed" || st.Error == "" {
				t.Errorf("%s bomb: job %s ended %s with error %q; want failed with a reason", bomb.name, sub.ID, st.State, st.Error)
			}
			t.Logf("%s bomb: %s", bomb.name, st.Error)
			c.alive(t, "the "+bomb.name+" bomb")
		}
	})
	w.put(t, 0)

	t.Run("http-malformed-input", func(t *testing.T) {
		h := c.https[2]
		if code, _ := doJSON(h+"/v1/kv/cas", http.MethodPut, "", strings.NewReader("orig"), nil); code != http.StatusOK {
			t.Fatalf("put cas: %d", code)
		}
		w.acked["cas"] = "orig"
		for _, c := range []struct {
			method, path, body string
			want               int
		}{
			{http.MethodPut, "/v1/kv/cas?prev=%zz", "blind", http.StatusBadRequest},
			{http.MethodPut, "/v1/kv/cas?prev=orig;x=1", "blind", http.StatusBadRequest},
			{http.MethodGet, "/v1/logs/node-1?limit=%zz", "", http.StatusBadRequest},
			{http.MethodPost, "/v1/locks/reports", `{"ttl_ms": 10000} garbage`, http.StatusBadRequest},
			{http.MethodDelete, "/v1/jobs/never-submitted", "", http.StatusNotFound},
			{http.MethodPost, "/v1/raft/voters/" + url.PathEscape("bad\x00name"), "", http.StatusBadRequest},
			{http.MethodPost, "/v1/raft/voters/" + url.PathEscape("../../etc"), "", http.StatusBadRequest},
			{http.MethodPost, "/v1/raft/voters/" + strings.Repeat("n", 3000), "", http.StatusBadRequest},
			{http.MethodPut, "/v1/config", "jobs:\n  exec: true\n  exec_cmd: [sh]\n", http.StatusConflict},
		} {
			code, raw := doJSON(h+c.path, c.method, "", strings.NewReader(c.body), nil)
			var e struct{ Error, Code string }
			if code != c.want || json.Unmarshal(raw, &e) != nil || e.Error == "" || e.Code == "" {
				t.Errorf("%s %s: %d %s; want %d and a JSON {error, code}", c.method, c.path, code, raw, c.want)
			}
		}
		c.alive(t, "malformed HTTP input")
	})

	t.Run("gossip-garbage-and-bad-names", func(t *testing.T) {
		for _, g := range c.gossips {
			conn, err := net.Dial("udp", g)
			if err != nil {
				t.Fatal(err)
			}
			garbage := bytes.Repeat([]byte{0xff, 0x00, 0x13}, 100)
			for i := range 10000 {
				garbage[0] = byte(i)
				_, _ = conn.Write(garbage)
			}
			_ = conn.Close()
		}
		for _, bad := range []string{"evil/slash", strings.Repeat("n", 300)} {
			joinAs(t, bad, c.gossips[0])
		}
		for i, h := range c.https {
			var members []struct{ Name string }
			if code, raw := doJSON(h+"/v1/members", http.MethodGet, "", nil, &members); code != http.StatusOK {
				t.Fatalf("%s members: %d %s", c.names[i], code, raw)
			}
			for _, m := range members {
				if transport.ValidateName("member", m.Name) != nil {
					t.Errorf("%s lists a member named %q", c.names[i], m.Name)
				}
			}
		}
		c.alive(t, "garbage gossip")
	})

	w.put(t, 1)
	c.raftStatus(t, 20*time.Second)
	w.check(t)
}

// sendRawBatch opens protoactor's Receive stream to bind, as a peer would,
// and sends one batch.
func sendRawBatch(t *testing.T, bind string, b *protoremote.MessageBatch) {
	t.Helper()
	conn, err := grpc.Dial(bind, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := protoremote.NewRemotingClient(conn).Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&protoremote.RemoteMessage{MessageType: &protoremote.RemoteMessage_ConnectRequest{
		ConnectRequest: &protoremote.ConnectRequest{ConnectionType: &protoremote.ConnectRequest_ServerConnection{
			ServerConnection: &protoremote.ServerConnection{SystemId: "forger", Address: "127.0.0.1:1"}}}}})
	_ = stream.Send(&protoremote.RemoteMessage{MessageType: &protoremote.RemoteMessage_MessageBatch{MessageBatch: b}})
	_ = stream.CloseSend()
	// Wait for the server's answer or end of stream, so the batch was read.
	for {
		if _, err := stream.Recv(); err != nil {
			return
		}
	}
}

// forgeEndpoint attaches a node of the given name to a network of its own
// that knows where `to` listens: a stranger on the network sending as name.
func forgeEndpoint(t *testing.T, name, to, addr string) transport.Endpoint {
	t.Helper()
	net, err := remote.New(remote.Config{Peers: map[string]string{to: addr}})
	if err != nil {
		t.Fatal(err)
	}
	sys := actor.NewActorSystem()
	ep, err := net.Attach(transport.Attachment{Node: name, System: sys, DeliverBatch: func(string, string, []byte) {}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ep.Close(); sys.Shutdown() })
	return ep
}

// joinAs has a memberlist of the given name join the gossip address, and
// leaves at once: a stranger announcing itself under a name no node may
// have.
func joinAs(t *testing.T, name, gossip string) {
	t.Helper()
	cfg := memberlist.DefaultLocalConfig()
	cfg.Name = name
	cfg.BindAddr, cfg.BindPort, cfg.AdvertisePort = "127.0.0.1", 0, 0
	cfg.LogOutput = io.Discard
	m, err := memberlist.Create(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Shutdown() }()
	_, _ = m.Join([]string{gossip})
}

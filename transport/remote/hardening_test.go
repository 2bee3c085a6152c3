package remote_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protoremote "github.com/asynkron/protoactor-go/remote"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/security"
	"github.com/troupe-dev/troupe/transport"
	"github.com/troupe-dev/troupe/transport/remote"
)

// recorder is a protocol that records the Pings it receives.
type recorder struct {
	mu  sync.Mutex
	got []string // "from:N"
}

func (r *recorder) Name() actors.ProtocolName { return "rec" }

func (r *recorder) Init(ctx *actors.Context) error {
	actors.OnMessage(ctx, func(_ *actors.Context, from actors.NodeName, m *messages.Ping) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.got = append(r.got, string(from)+":"+itoa(m.N))
		return nil
	})
	return nil
}

func (r *recorder) has(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range r.got {
		if g == s {
			return true
		}
	}
	return false
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// victim starts two nodes on loopback, node-2 running a recorder and
// node-1 an impostor of it that sends node-2 Pings; log receives the
// nodes' logs.
func victim(t *testing.T, log *logBuf) (c *cluster.Cluster, rec *recorder, imp *actortest.Impostor) {
	t.Helper()
	actortest.SkipRemoteUnderRace(t)
	c = clustertest.NewCluster(t, 2, cluster.Remote(), cluster.Logger(zerolog.New(log)))
	rec, imp = &recorder{}, actortest.NewImpostor("rec")
	if err := c.Node("node-2").Start(func() actors.Protocol { return rec }); err != nil {
		t.Fatal(err)
	}
	if err := c.Node("node-1").Start(imp.Factory()); err != nil {
		t.Fatal(err)
	}
	delivers(t, c, rec, imp, 1)
	return c, rec, imp
}

// delivers checks that node-1 still reaches node-2's recorder.
func delivers(t *testing.T, c *cluster.Cluster, rec *recorder, imp *actortest.Impostor, n uint64) {
	t.Helper()
	imp.Send(t, c.Node("node-1"), "node-2", &messages.Ping{N: n}, false)
	actortest.Eventually(t, 10*time.Second, "node-2 receives Ping "+itoa(n)+" from node-1", func() bool { return rec.has("node-1:" + itoa(n)) })
}

func dial(t *testing.T, addr string, creds credentials.TransportCredentials) protoremote.RemotingClient {
	t.Helper()
	conn, err := grpc.Dial(addr, grpc.WithTransportCredentials(creds)) //nolint:staticcheck // protoactor pins a gRPC without NewClient
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return protoremote.NewRemotingClient(conn)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestUnaryCallsAreRefused: protoactor's ListProcesses and
// GetProcessDiagnostics panic ("implement me"), and a panic in a gRPC
// handler ends the process. A node refuses both, and every method it does
// not serve, with codes.Unimplemented, and goes on delivering.
func TestUnaryCallsAreRefused(t *testing.T) {
	var log logBuf
	c, rec, imp := victim(t, &log)
	client := dial(t, c.Node("node-2").Address(), insecure.NewCredentials())
	ctx := testContext(t)
	_, err := client.ListProcesses(ctx, &protoremote.ListProcessesRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("ListProcesses: %v; want codes.Unimplemented", err)
	}
	_, err = client.GetProcessDiagnostics(ctx, &protoremote.GetProcessDiagnosticsRequest{})
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "serves only /remote.Remoting/Receive") {
		t.Errorf("GetProcessDiagnostics: %v; want codes.Unimplemented naming the one method served", err)
	}
	delivers(t, c, rec, imp, 2)
	if !strings.Contains(log.String(), `"method":"/remote.Remoting/ListProcesses"`) {
		t.Errorf("the refused call is not logged:\n%s", log.String())
	}
}

// raw is a Receive stream to a node, as a foreign peer opens it.
type raw struct {
	t      *testing.T
	stream protoremote.Remoting_ReceiveClient
	inbox  *actor.PID
}

func openRaw(t *testing.T, addr string, creds credentials.TransportCredentials) *raw {
	t.Helper()
	stream, err := dial(t, addr, creds).Receive(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	return &raw{t: t, stream: stream, inbox: actor.NewPID(addr, "troupe")}
}

func (r *raw) send(m *protoremote.RemoteMessage) {
	r.t.Helper()
	if err := r.stream.Send(m); err != nil {
		r.t.Fatal(err)
	}
}

// batch sends one protoactor message batch of the given types and envelopes
// (for the node's inbox unless targets are given).
func (r *raw) batch(types []string, targets []*actor.PID, envs ...*protoremote.MessageEnvelope) {
	r.t.Helper()
	if targets == nil {
		targets = []*actor.PID{r.inbox}
	}
	r.send(&protoremote.RemoteMessage{MessageType: &protoremote.RemoteMessage_MessageBatch{MessageBatch: &protoremote.MessageBatch{
		TypeNames: types, Targets: targets, Envelopes: envs}}})
}

// pingBatch encodes a troupe.v1.Batch of one Ping with the given names.
func pingBatch(t *testing.T, names string, n uint64) []byte {
	t.Helper()
	entry, _, err := transport.AppendMessage(nil, &messages.Ping{N: n})
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(&messages.Batch{Names: []byte(names), Envelopes: entry})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSystemMessagesAreRefused: a Receive stream carrying protoactor system
// messages (an actor.Terminated without its actor panics protoactor's
// endpoint manager), messages for other processes or other addresses
// (which protoactor would forward), messages with a sender, a client
// connection request or a bare message: the node refuses each, counts it,
// logs it rate-limited with a count of the lines it held back, and keeps
// the stream and delivery going.
func TestSystemMessagesAreRefused(t *testing.T) {
	var log logBuf
	c, rec, imp := victim(t, &log)
	node2 := c.Node("node-2")
	r := openRaw(t, node2.Address(), insecure.NewCredentials())
	r.send(&protoremote.RemoteMessage{MessageType: &protoremote.RemoteMessage_ConnectRequest{ConnectRequest: &protoremote.ConnectRequest{
		ConnectionType: &protoremote.ConnectRequest_ServerConnection{ServerConnection: &protoremote.ServerConnection{SystemId: "x", Address: "127.0.0.1:1"}}}}})

	refusals := 0
	types := []string{"actor.Terminated", "actor.Watch", "actor.Unwatch", "actor.Stop", "actor.PoisonPill", "remote.ActorPidRequest", "troupe.v1.Batch"}
	for i := range 6 {
		r.batch(types, nil, &protoremote.MessageEnvelope{TypeId: int32(i), MessageData: nil}) // nil Who, nil Watcher, ...
		refusals++
	}
	good := pingBatch(t, "node-1/node-2/rec", 100)
	elsewhere := []*actor.PID{actor.NewPID("127.0.0.1:1", "troupe"), actor.NewPID(node2.Address(), "$1"), r.inbox}
	r.batch(types, elsewhere,
		&protoremote.MessageEnvelope{TypeId: 6, Target: 0, MessageData: good},                     // would be forwarded to 127.0.0.1:1
		&protoremote.MessageEnvelope{TypeId: 6, Target: 1, MessageData: good},                     // another process of the node
		&protoremote.MessageEnvelope{TypeId: 6, Target: 2, Sender: 1, MessageData: good},          // a sender
		&protoremote.MessageEnvelope{TypeId: 6, Target: 2, TargetRequestId: 3, MessageData: good}, // a request
		&protoremote.MessageEnvelope{TypeId: 6, Target: 2, MessageData: []byte{0x0a, 0x7f}},       // a batch that does not decode
		&protoremote.MessageEnvelope{TypeId: 0, Target: 2, MessageData: marshal(t, &actor.Terminated{Who: actor.NewPID("127.0.0.1:1", "x")})},
	)
	refusals += 6
	r.send(&protoremote.RemoteMessage{MessageType: &protoremote.RemoteMessage_ConnectRequest{ConnectRequest: &protoremote.ConnectRequest{
		ConnectionType: &protoremote.ConnectRequest_ClientConnection{ClientConnection: &protoremote.ClientConnection{}}}}})
	r.send(&protoremote.RemoteMessage{MessageType: &protoremote.RemoteMessage_ConnectRequest{ConnectRequest: &protoremote.ConnectRequest{}}})
	r.send(&protoremote.RemoteMessage{})
	r.send(&protoremote.RemoteMessage{MessageType: &protoremote.RemoteMessage_DisconnectRequest{DisconnectRequest: &protoremote.DisconnectRequest{}}})
	refusals += 4
	// The same stream still carries a good batch after all that.
	r.batch(types, nil, &protoremote.MessageEnvelope{TypeId: 6, MessageData: good})
	actortest.Eventually(t, 10*time.Second, "node-2 receives the good batch after the bad ones", func() bool { return rec.has("node-1:100") })
	if got := node2.Stats().Rejected; got != int64(refusals) {
		t.Errorf("node-2 counted %d refusals, want %d", got, refusals)
	}
	delivers(t, c, rec, imp, 2)
	for _, want := range []string{`actor.Terminated from 127.0.0.1:`, `troupe nodes send only troupe.v1.Batch`, `process \"troupe\" at \"127.0.0.1:1\"`} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log does not mention %q:\n%s", want, log.String())
		}
	}
	// 16 refusals: 10 logged, 6 held back and reported when the node stops.
	if err := c.Crash("node-2"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "refused a message on the node port (6 similar suppressed)") {
		t.Errorf("the 6 refusals held back are not reported:\n%s", log.String())
	}
}

// TestMutualTLSPeerSendsAsItsCertificate: with mutual TLS, any certificate
// of the cluster's CA passes the handshake, but a peer may send only as
// the node its certificate names; a node does not start with a certificate
// for another name.
func TestMutualTLSPeerSendsAsItsCertificate(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	ca, err := security.NewCA("cluster CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var log logBuf
	net, err := remote.New(remote.Config{TLS: mutual(t, ca, "b", &log), Logger: zerolog.New(&log)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := net.Attach(transport.Attachment{Node: "a", System: actor.NewActorSystem(), DeliverBatch: ignore}); err == nil ||
		!strings.Contains(err.Error(), `node a cannot use a certificate issued for node "b"`) {
		t.Errorf("attaching node a with b's certificate: %v; want a refusal naming both", err)
	}
	b := attach(t, net, "b")

	m := mutual(t, ca, "m", &log) // a member of the cluster, named m
	r := openRaw(t, b.ep.Address(), credentials.NewTLS(m.Client("", "h2")))
	types := []string{"troupe.v1.Batch"}
	r.batch(types, nil, &protoremote.MessageEnvelope{MessageData: pingBatch(t, "a/b/p", 1)}) // m sending as a
	r.batch(types, nil, &protoremote.MessageEnvelope{MessageData: pingBatch(t, "m/b/p", 2)}) // m as itself
	actortest.Eventually(t, 10*time.Second, "b receives m's own batch", func() bool { return b.count() == 1 })
	b.mu.Lock()
	got, refused := b.got[0].From, b.refused
	b.mu.Unlock()
	if got != "m" {
		t.Errorf("b received a batch from %q; want only m's own", got)
	}
	if len(refused) != 1 || !errors.Is(refused[0], transport.ErrMalformed) || !strings.Contains(refused[0].Error(), `sent as node "a"`) ||
		!strings.Contains(refused[0].Error(), `certificate is for node "m"`) {
		t.Errorf("refusals %v; want one naming the node m sent as and its certificate's", refused)
	}
	if !strings.Contains(log.String(), `"certificate":"m"`) {
		t.Errorf("the refusal is not logged with the certificate's name:\n%s", log.String())
	}

	_, err = dial(t, b.ep.Address(), credentials.NewTLS(m.Client("", "h2"))).ListProcesses(testContext(t), &protoremote.ListProcessesRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("ListProcesses over mutual TLS: %v; want codes.Unimplemented", err)
	}
	r.batch(types, nil, &protoremote.MessageEnvelope{MessageData: pingBatch(t, "m/b/p", 3)})
	actortest.Eventually(t, 10*time.Second, "b receives m's next batch", func() bool { return b.count() == 2 })
}

package grains_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	paremote "github.com/asynkron/protoactor-go/remote"
	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	local "github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/grains"
	"github.com/troupe-dev/troupe/membership"
	pb "github.com/troupe-dev/troupe/messages"
)

// echo is a grain that answers a Ping with a Pong carrying n plus the
// number of its node.
type echo struct{ node uint64 }

func (e *echo) Receive(ctx actor.Context) {
	if p, ok := ctx.Message().(*pb.Ping); ok {
		ctx.Respond(&pb.Pong{N: p.N + 1000*e.node})
	}
}

func echoKind(node int) *cluster.Kind {
	return cluster.NewKind("echo", actor.PropsFromProducer(func() actor.Actor { return &echo{node: uint64(node)} }))
}

// logs collects what the nodes log.
type logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs n nodes on loopback (and opts), each announcing the kind
// echo and running the actor cluster with cfg (node i hosting
// echoKind(i)); nodes in clients host no kind.
func start(t testing.TB, n int, cfg grains.Config, clients []actors.NodeName, opts ...local.Option) (*local.Cluster, map[actors.NodeName]*grains.Grains, *logs) {
	t.Helper()
	if n > 1 || len(opts) > 0 {
		actortest.SkipRemoteUnderRace(t) // one remote at a time is race-clean
	}
	l := &logs{}
	opts = append([]local.Option{local.Remote(), local.Logger(zerolog.New(l)),
		local.Membership(membership.Config{Preset: membership.PresetLocal, Kinds: []string{"echo"}})}, opts...)
	c := clustertest.NewCluster(t, n, opts...)
	g := map[actors.NodeName]*grains.Grains{}
	for i, node := range c.Nodes() {
		ncfg := cfg
		if !contains(clients, node.Name()) {
			ncfg.Kinds = []*cluster.Kind{echoKind(i + 1)}
		} else if err := c.Member(node.Name()).SetKinds(nil, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		gg, err := grains.Start(node, c.Remote, ncfg)
		if err != nil {
			t.Fatalf("grains.Start on %s: %v", node.Name(), err)
		}
		t.Cleanup(func() { _ = gg.Stop() })
		g[node.Name()] = gg
	}
	return c, g, l
}

// converge waits until every node's actor cluster lists the n members.
func converge(t testing.TB, g map[actors.NodeName]*grains.Grains, n int) {
	t.Helper()
	actortest.Eventually(t, 20*time.Second, fmt.Sprintf("every actor cluster lists %d members", n), func() bool {
		for _, gg := range g {
			if gg.Members() != n {
				return false
			}
		}
		return true
	})
}

func contains(names []actors.NodeName, n actors.NodeName) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}

func ping(g *grains.Grains, identity string, n uint64, timeout time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rep, err := g.Request(ctx, identity, "echo", &pb.Ping{N: n})
	if err != nil {
		return 0, err
	}
	return rep.(*pb.Pong).N, nil
}

// TestGrainsAnswerFromEveryNode calls grains from every node, node-3
// hosting no kind: every grain answers, lives on a node that hosts the
// kind, and once active stays where it is.
func TestGrainsAnswerFromEveryNode(t *testing.T) {
	_, g, _ := start(t, 3, grains.Config{}, []actors.NodeName{"node-3"})
	converge(t, g, 3)
	// Until every node's actor cluster knows the hosts, a request may
	// find no host; wait for one answer from each node.
	for name, gg := range g {
		actortest.Eventually(t, 20*time.Second, string(name)+" reaches a grain", func() bool {
			_, err := ping(gg, "warm-up", 0, 2*time.Second)
			return err == nil
		})
	}
	homes := map[string]uint64{}
	for i := range 12 {
		id := fmt.Sprintf("grain-%d", i)
		for name, gg := range g {
			got, err := ping(gg, id, uint64(i), 5*time.Second)
			if err != nil {
				t.Fatalf("%s asking %s: %v", name, id, err)
			}
			home, n := got/1000, got%1000
			if n != uint64(i) || (home != 1 && home != 2) {
				t.Fatalf("%s asking %s: answer %d, want %d from node 1 or 2 (node-3 hosts no kind)", name, id, got, i)
			}
			if h, ok := homes[id]; ok && h != home {
				t.Errorf("%s answered from node %d, then from node %d", id, h, home)
			}
			homes[id] = home
		}
	}
	spread := map[uint64]bool{}
	for _, h := range homes {
		spread[h] = true
	}
	if len(spread) != 2 {
		t.Errorf("12 grains all live on %v; want them spread over node 1 and node 2", spread)
	}
	if a, b, c := g["node-1"].Active(), g["node-2"].Active(), g["node-3"].Active(); a+b != 13 || c != 0 {
		t.Errorf("active grains %d, %d, %d; want 13 on node 1 and 2 together, none on node 3", a, b, c)
	}
}

// TestGrainsOverMutualTLS: with mutual TLS on the node port, grain
// requests, activations and replies cross it as Troupe's traffic does.
func TestGrainsOverMutualTLS(t *testing.T) {
	_, g, _ := start(t, 2, grains.Config{}, nil, local.RemoteTLS(nil))
	converge(t, g, 2)
	homes := map[uint64]bool{}
	for i := range 8 {
		id := fmt.Sprintf("grain-%d", i)
		var got uint64
		actortest.Eventually(t, 20*time.Second, "node-1 reaches "+id, func() bool {
			var err error
			got, err = ping(g["node-1"], id, uint64(i), 2*time.Second)
			return err == nil
		})
		homes[got/1000] = true
	}
	if !homes[2] {
		t.Errorf("8 grains live on nodes %v; want some on node 2, across TLS", homes)
	}
}

// TestBadRequestsAreRefused checks the errors a caller gets for what it
// asks wrong, and Config's.
func TestBadRequestsAreRefused(t *testing.T) {
	c, g, _ := start(t, 1, grains.Config{MaxIdentity: 16}, nil)
	gg := g["node-1"]
	actortest.Eventually(t, 20*time.Second, "the grain answers", func() bool {
		_, err := ping(gg, "x", 0, 2*time.Second)
		return err == nil
	})
	ctx := context.Background()
	for _, tc := range []struct {
		what, identity, kind string
		want                 error
		says                 []string
	}{
		{"an unknown kind", "x", "nope", grains.ErrUnknownKind, []string{`"nope"`, "[echo]"}},
		{"a kind that is no kind name", "x", "a/b", grains.ErrUnknownKind, []string{"grain kind", `'/'`}},
		{"an empty identity", "", "echo", grains.ErrBadIdentity, []string{"empty"}},
		{"a long identity", strings.Repeat("x", 17), "echo", grains.ErrBadIdentity, []string{"17 bytes", "at most 16"}},
		{"an identity that is not UTF-8", "\xff", "echo", grains.ErrBadIdentity, []string{"UTF-8"}},
	} {
		_, err := gg.Request(ctx, tc.identity, tc.kind, &pb.Ping{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.what, err, tc.want)
			continue
		}
		for _, s := range tc.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not say %s", tc.what, err, s)
			}
		}
	}
	// protoactor's own API goes the same way.
	if _, err := gg.Cluster().Request("x", "nope", &pb.Ping{}, cluster.WithTimeout(time.Second)); !errors.Is(err, grains.ErrUnknownKind) {
		t.Errorf("cluster.Request of an unknown kind: %v, want ErrUnknownKind", err)
	}
	if rep, err := gg.Cluster().Request("x", "echo", &pb.Ping{N: 7}); err != nil || rep.(*pb.Pong).N != 1007 {
		t.Errorf("cluster.Request: %v, %v; want Pong 1007", rep, err)
	}
	expired, cancel := context.WithTimeout(ctx, -time.Second)
	defer cancel()
	if _, err := gg.Request(expired, "x", "echo", &pb.Ping{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a request past its deadline: %v, want context.DeadlineExceeded", err)
	}
	if _, err := grains.Start(c.Nodes()[0], c.Remote, grains.Config{}); err == nil || !strings.Contains(err.Error(), "once per node") {
		t.Errorf("a second Start on the node: %v; want it refused", err)
	}
	if err := gg.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := gg.Request(ctx, "x", "echo", &pb.Ping{}); !errors.Is(err, grains.ErrStopped) {
		t.Errorf("a request after Stop: %v, want ErrStopped", err)
	}

	bad := grains.Config{Kinds: []*cluster.Kind{echoKind(1), echoKind(2), nil, cluster.NewKind("a b", actor.PropsFromFunc(func(actor.Context) {}))},
		ClusterName: "?", RequestTimeout: -1, MaxActivations: -1}
	err := bad.Validate()
	for _, s := range []string{`kind "echo" is registered twice`, "Kinds[2] is nil", `Kinds[3]: grain kind name "a b"`, "ClusterName", "RequestTimeout", "MaxActivations"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("Validate: %v; want it to say %s", err, s)
		}
	}
}

// TestStartNeedsRemote: the sim network has no protoactor remote.
func TestStartNeedsRemote(t *testing.T) {
	c := clustertest.NewCluster(t, 1)
	_, err := grains.Start(c.Nodes()[0], nil, grains.Config{})
	if err == nil || !strings.Contains(err.Error(), "transport/remote") {
		t.Errorf("Start without a remote network: %v; want an error naming transport/remote", err)
	}
}

// TestActivationsAreBounded: a node activates at most MaxActivations
// grains; beyond, requests fail and nothing more is spawned.
func TestActivationsAreBounded(t *testing.T) {
	_, g, logs := start(t, 1, grains.Config{MaxActivations: 2}, nil)
	gg := g["node-1"]
	actortest.Eventually(t, 20*time.Second, "the first grain answers", func() bool {
		_, err := ping(gg, "a", 0, 2*time.Second)
		return err == nil
	})
	if _, err := ping(gg, "b", 0, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	_, err := ping(gg, "c", 0, 300*time.Millisecond)
	if !errors.Is(err, grains.ErrTimeout) || !strings.Contains(err.Error(), "did not activate") {
		t.Errorf("a third grain: %v; want ErrTimeout saying its owner did not activate it", err)
	}
	if n := gg.Active(); n != 2 {
		t.Errorf("%d grains active; want 2", n)
	}
	if !strings.Contains(logs.String(), "MaxActivations") {
		t.Errorf("the refusal is not logged with its reason; logs:\n%s", logs)
	}
}

// TestForgedMessagesAreRefused speaks protoactor to a node as a hostile
// peer would: messages for processes outside the actor cluster, forged
// and unknown kinds, bad identities, protoactor's control messages and
// replies nobody waits for are refused, logged and counted; the node goes
// on serving grains, to the peer too.
func TestForgedMessagesAreRefused(t *testing.T) {
	actortest.SkipRemoteUnderRace(t) // the peer is a second protoactor remote
	// Registered first, run last: once the node has stopped, protoactor's
	// writer that answered the peer closes its connection within 2 s
	// (its sleep after a failed dial), which Stop does not wait for.
	t.Cleanup(func() {
		for _, pkg := range []string{"protoactor-go/remote.", "google.golang.org/grpc."} {
			if err := actortest.WaitFor(10*time.Second, func() bool { return actortest.NoGoroutinesOf(pkg) == nil }); err != nil {
				t.Errorf("after the cluster stopped: %v", actortest.NoGoroutinesOf(pkg))
			}
		}
	})
	c, g, logs := start(t, 1, grains.Config{MaxIdentity: 64}, nil)
	node := c.Nodes()[0]
	actortest.Eventually(t, 20*time.Second, "the grain answers", func() bool {
		_, err := ping(g["node-1"], "x", 0, 2*time.Second)
		return err == nil
	})

	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	rcfg := paremote.Configure("127.0.0.1", 0)
	rcfg.MaxRetryCount = 1
	r := paremote.NewRemote(sys, rcfg)
	r.Start()
	defer r.Shutdown(false)
	at := func(id string) *actor.PID { return actor.NewPID(node.Address(), id) }
	placement := at("grain-placement")
	activate := func(kind, identity string) *cluster.ActivationRequest {
		return &cluster.ActivationRequest{ClusterIdentity: &cluster.ClusterIdentity{Kind: kind, Identity: identity}}
	}
	// A request the node admits, answered: a peer may activate grains.
	res, err := sys.Root.RequestFuture(placement, activate("echo", "from-the-peer"), 5*time.Second).Result()
	if a, ok := res.(*cluster.ActivationResponse); err != nil || !ok || a.Failed || a.Pid == nil {
		t.Fatalf("a valid activation request: %v, %v; want an activation", res, err)
	}
	grain := res.(*cluster.ActivationResponse).Pid

	ask := func(pid *actor.PID, m any) { sys.Root.RequestFuture(pid, m, time.Millisecond) } // no answer is expected
	before := node.Stats().Rejected
	forged := []struct {
		what string
		send func()
		says string
	}{
		{"an unknown kind", func() { ask(placement, activate("nope", "x")) }, `hosts kinds [echo], not \"nope\"`},
		{"an identity too long", func() { ask(placement, activate("echo", strings.Repeat("x", 65))) }, "at most 64"},
		{"no grain named", func() { ask(placement, &cluster.ActivationRequest{}) }, "names no grain"},
		{"no sender to answer", func() { sys.Root.Send(placement, activate("echo", "y")) }, "no sender"},
		{"another type for the placement", func() { sys.Root.Send(placement, &pb.Ping{}) }, "takes cluster.ActivationRequest"},
		{"a control message for a grain", func() { sys.Root.Send(grain, &actor.PoisonPill{}) }, "control messages are refused"},
		{"a cluster message for a grain", func() { sys.Root.Send(grain, &cluster.ActivationRequest{}) }, "not cluster.ActivationRequest"},
		{"a Troupe protocol's actor", func() { sys.Root.Send(at("protocol-membership"), &pb.Ping{}) }, `process \"protocol-membership\" is none`},
		{"protoactor's event stream", func() { sys.Root.Send(at("eventstream"), &cluster.ActivationTerminated{}) }, `process \"eventstream\" is none`},
		{"a reply nobody waits for", func() { sys.Root.Send(at("future$1"), &pb.Pong{}) }, "not a request of the actor cluster"},
	}
	for _, f := range forged {
		f.send()
	}
	actortest.Eventually(t, 10*time.Second, fmt.Sprintf("the node rejects the %d forged messages", len(forged)), func() bool {
		return node.Stats().Rejected >= before+int64(len(forged))
	})
	for _, f := range forged {
		if !strings.Contains(logs.String(), f.says) {
			t.Errorf("%s: the log does not say %s", f.what, f.says)
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", logs)
	}
	if n := g["node-1"].Active(); n != 2 {
		t.Errorf("%d grains active; want the 2 asked for validly", n)
	}
	// The grain still answers, the peer and the node.
	rep, err := sys.Root.RequestFuture(grain, &pb.Ping{N: 5}, 5*time.Second).Result()
	if p, ok := rep.(*pb.Pong); err != nil || !ok || p.N != 1005 {
		t.Errorf("the grain after the forgeries: %v, %v; want Pong 1005", rep, err)
	}
	if got, err := ping(g["node-1"], "from-the-peer", 6, 5*time.Second); err != nil || got != 1006 {
		t.Errorf("the node's request after the forgeries: %d, %v; want 1006", got, err)
	}
}

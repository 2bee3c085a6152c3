package telemetry_test

import (
	"context"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	dto "github.com/prometheus/client_model/go"
	raftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/kv"
	pb "github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/mutex"
	"github.com/troupe-dev/troupe/telemetry"
)

// fragile panics on every Ping from another node: the runtime refuses each.
type fragile struct{}

func (fragile) Name() actors.ProtocolName { return "fragile" }

func (fragile) Init(ctx *actors.Context) error {
	actors.OnMessage(ctx, func(*actors.Context, actors.NodeName, *pb.Ping) error { panic("a handler bug a remote input reaches") })
	return nil
}

// TestRefusalsAreOnMetrics: each kind of refused remote input is a series
// on /metrics, and counts: a remote message whose handler panicked (per
// protocol), a message for a protocol the node does not run, a raft message
// the inbound checks dropped, a gossiped member with a bad name, and
// memberlist log lines held back.
func TestRefusalsAreOnMetrics(t *testing.T) {
	c := clustertest.NewCluster(t, 2, cluster.Membership(clustertest.SimMembership()))
	n1, n2 := c.Node("node-1"), c.Node("node-2")
	rcfg := consensus.DefaultConfig()
	rcfg.Machines = []consensus.Machine{kv.DefaultMachine(), mutex.LockMachine()}
	rcfg.DataDir, rcfg.Peers, rcfg.NoSync = t.TempDir(), []actors.NodeName{"node-1"}, true
	rf, err := consensus.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n1.Start(rf); err != nil {
		t.Fatal(err)
	}
	if err := n1.Start(func() actors.Protocol { return fragile{} }); err != nil {
		t.Fatal(err)
	}
	kc, err := kv.NewClient(n1)
	if err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 10*time.Second, "node-1 leads its raft group", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := kc.Status(ctx)
		return err == nil && st.Leader == "node-1" && len(st.Voters) == 1
	})
	reg := telemetry.NewRegistry(n1)
	reg.MustRegister(telemetry.NewMembershipCollector(c.Member("node-1")))
	srv := httptest.NewServer(telemetry.Handler(n1, telemetry.HandlerConfig{Metrics: reg}))
	defer srv.Close()

	node := map[string]string{"node": "node-1"}
	series := []struct {
		name   string
		labels map[string]string
	}{
		{"troupe_refused_messages_total", map[string]string{"node": "node-1", "protocol": "fragile"}},
		{"troupe_unknown_protocol_messages_total", node},
		{"troupe_rejected_envelopes_total", node},
		{"troupe_raft_dropped_messages_total", node},
		{"troupe_membership_refused_members_total", node},
		{"troupe_membership_log_suppressed_total", node},
	}
	counters := func() map[string]float64 {
		fams := scrape(t, srv.URL+"/metrics")
		out := map[string]float64{}
		for _, s := range series {
			m, ok := value(fams, s.name, s.labels)
			if !ok {
				t.Fatalf("no %s%v in /metrics", s.name, s.labels)
			}
			if got := fams[s.name].GetType(); got != dto.MetricType_COUNTER {
				t.Fatalf("%s is a %v, want a counter", s.name, got)
			}
			out[s.name] = m.GetCounter().GetValue()
		}
		return out
	}
	before := counters()

	// node-2 sends, as protocols of its own, a Ping the handler panics on,
	// a Ping for a protocol node-1 does not run, and a raft heartbeat from
	// a node outside node-1's group.
	panics, unknown, forged := actortest.NewImpostor("fragile"), actortest.NewImpostor("nope"), actortest.NewImpostor(consensus.Name)
	for _, imp := range []*actortest.Impostor{panics, unknown, forged} {
		if err := n2.Start(imp.Factory()); err != nil {
			t.Fatal(err)
		}
	}
	panics.Send(t, n2, "node-1", &pb.Ping{N: 1}, false)
	unknown.Send(t, n2, "node-1", &pb.Ping{N: 2}, false)
	hb, err := proto.Marshal(&raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: new(consensus.ID("node-2")), To: new(consensus.ID("node-1")), Term: new(uint64(1000))})
	if err != nil {
		t.Fatal(err)
	}
	forged.Send(t, n2, "node-1", &pb.RaftBatch{Messages: [][]byte{hb}}, false)

	// A stranger with a name no node may have joins node-1's gossip over
	// the hub, and sends it garbage packets, which memberlist logs, one
	// line of a kind at a time.
	tr, err := c.Hub.Memberlist("stranger")
	if err != nil {
		t.Fatal(err)
	}
	mcfg := memberlist.DefaultLocalConfig()
	mcfg.Name, mcfg.Transport, mcfg.LogOutput = "evil/slash", tr, io.Discard
	ml, err := memberlist.Create(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	gossip := c.Member("node-1").GossipAddr()
	_, _ = ml.Join([]string{gossip}) // node-1 refuses the name in the push-pull
	for range 20 {
		if _, err := tr.WriteTo([]byte{0xff, 1, 2, 3}, gossip); err != nil {
			t.Fatal(err)
		}
	}

	var after map[string]float64
	err = actortest.WaitFor(10*time.Second, func() bool {
		after = counters()
		for _, s := range series {
			if s.name != "troupe_rejected_envelopes_total" && after[s.name] <= before[s.name] {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("not every refusal counted on /metrics: before %v, after %v", before, after)
	}
	for _, s := range series[:4] {
		if s.name == "troupe_rejected_envelopes_total" {
			continue
		}
		if d := after[s.name] - before[s.name]; d != 1 {
			t.Errorf("%s went up by %v, want 1", s.name, d)
		}
	}
}

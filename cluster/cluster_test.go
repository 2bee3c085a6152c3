package cluster_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/membership"
	pb "github.com/troupe-dev/troupe/messages"
)

// pinger sends a Ping to every node it is told of and reports the pings
// it receives as "from→to".
type pinger struct {
	heard chan<- string
}

type pingAll struct{ to []actors.NodeName }

func (p *pinger) Name() actors.ProtocolName { return "pinger" }

func (p *pinger) Init(ctx *actors.Context) error {
	actors.OnMessage(ctx, func(ctx *actors.Context, from actors.NodeName, _ *pb.Ping) error {
		p.heard <- string(from) + "→" + string(ctx.Node())
		return nil
	})
	actors.OnTell(ctx, func(ctx *actors.Context, m pingAll) error {
		for _, to := range m.to {
			if err := ctx.Send(to, &pb.Ping{N: 1}); err != nil {
				return err
			}
		}
		return nil
	})
	return nil
}

// TestRemoteTLSIssuesACertificatePerNode: an in-process cluster over
// mutual TLS gives each node a certificate naming it, so every node hears
// every other on the node port, SWIM's TLS streams let them all join, and
// a node that left and restarts comes back under its certificate.
func TestRemoteTLSIssuesACertificatePerNode(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	heard := make(chan string, 64)
	c := clustertest.NewCluster(t, 3, cluster.RemoteTLS(nil),
		cluster.Membership(membership.Config{Preset: membership.PresetLocal}))
	if err := c.Start(func() actors.Protocol { return &pinger{heard: heard} }); err != nil {
		t.Fatal(err)
	}
	names := c.Names()
	actortest.Eventually(t, 10*time.Second, "every member sees the three nodes", func() bool {
		for _, m := range c.Members() {
			if live := m.View().LiveNames(); len(live) != len(names) {
				return false
			}
		}
		return true
	})
	round := func(what string) {
		t.Helper()
		var want, got []string
		for _, from := range names {
			others := slices.DeleteFunc(slices.Clone(names), func(n actors.NodeName) bool { return n == from })
			for _, to := range others {
				want = append(want, string(from)+"→"+string(to))
			}
			if err := c.Node(from).Tell("pinger", pingAll{to: others}); err != nil {
				t.Fatal(err)
			}
		}
		for range want {
			got = append(got, actortest.Receive(t, heard, 10*time.Second, fmt.Sprintf("%s: a ping (have %v)", what, got)))
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: heard %v, want %v", what, got, want)
		}
	}
	round("first")
	if err := c.Leave("node-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Restart("node-2"); err != nil {
		t.Fatal(err)
	}
	round("after node-2 left and restarted")
}

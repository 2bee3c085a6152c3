package grains_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/grains"
	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/transport/remote"
	"github.com/troupe-dev/troupe/transport/sim"
)

// TestRefutedMemberHostsGrainsAgain runs SWIM over the sim hub, so that it
// can be cut, and the node port over loopback. node-1 and node-2 are cut
// apart: each declares the other failed, and drops it from its actor
// cluster. When the cut heals they merge again, the same starts (a
// refutation, not a restart), and node-2 hosts grains again in node-1's
// actor cluster: under a new member Id, as protoactor blocks for good the
// Id of a member that left its list (docs/membership.md, "member Ids").
func TestRefutedMemberHostsGrainsAgain(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	hub, err := sim.New(sim.Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	net, err := remote.New(remote.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var ms []*membership.Membership
	g := map[actors.NodeName]*grains.Grains{}
	t.Cleanup(func() {
		for _, gg := range g {
			_ = gg.Stop()
		}
		for _, m := range ms {
			_ = m.Shutdown()
		}
		_ = hub.Close()
	})
	for i, name := range []actors.NodeName{"node-1", "node-2"} {
		acfg := actors.DefaultConfig()
		acfg.Name, acfg.Network = name, net
		node, err := actors.NewNode(acfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = node.Stop() })
		tr, err := hub.Memberlist(string(name))
		if err != nil {
			t.Fatal(err)
		}
		mcfg := membership.Config{Name: name, Address: node.Address(), Kinds: []string{"echo"}, Transport: tr,
			Preset: membership.PresetLocal, Timing: membership.Timing{ReconnectInterval: 300 * time.Millisecond}}
		if i > 0 {
			mcfg.Seeds = []string{ms[0].GossipAddr()}
		}
		m, err := membership.New(mcfg)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
		if err := m.Join(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := membership.Attach(node, m); err != nil {
			t.Fatal(err)
		}
		if g[name], err = grains.Start(node, net, grains.Config{Kinds: []*cluster.Kind{echoKind(i + 1)}}); err != nil {
			t.Fatal(err)
		}
	}
	converge(t, g, 2)
	var onTwo string // a grain node-2 owns
	for i := 0; onTwo == "" && i < 100; i++ {
		id := fmt.Sprintf("grain-%d", i)
		got, err := ping(g["node-1"], id, 0, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got/1000 == 2 {
			onTwo = id
		}
	}
	gen, _ := ms[0].View().Get("node-2")

	hub.Partition([]string{"node-1"}, []string{"node-2"})
	actortest.Eventually(t, 20*time.Second, "each side drops the other from its actor cluster", func() bool {
		return g["node-1"].Members() == 1 && g["node-2"].Members() == 1
	})
	// node-1 alone owns every grain in its actor cluster now.
	if got, err := ping(g["node-1"], onTwo, 0, 5*time.Second); err != nil || got/1000 != 1 {
		t.Fatalf("during the cut, %s from node-1: %d, %v; want it activated on node-1", onTwo, got, err)
	}
	hub.Heal()
	actortest.Eventually(t, 30*time.Second, "both actor clusters list both members again", func() bool {
		return g["node-1"].Members() == 2 && g["node-2"].Members() == 2
	})
	if now, _ := ms[0].View().Get("node-2"); now.Generation != gen.Generation {
		t.Fatalf("node-2 came back as generation %d, was %d: a restart, not a refutation", now.Generation, gen.Generation)
	}
	actortest.Eventually(t, 10*time.Second, onTwo+" answers from node-2 again", func() bool {
		got, err := ping(g["node-1"], onTwo, 0, 2*time.Second)
		return err == nil && got/1000 == 2
	})
	ids := g["node-1"].Cluster().GetBlockedMembers().ToSlice()
	if len(ids) != 1 || ids[0] != membership.MemberID("node-2", gen.Generation, 0) {
		t.Errorf("node-1's actor cluster blocks %v; want node-2's first Id alone", ids)
	}
}

package cluster_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/membership"
	pb "github.com/troupe-dev/troupe/messages"
)

// chatty pings every node of the cluster every 20 ms, as raft or
// telemetry talk to their peers whether they live or not, and notes the
// pings heard as "from→to".
type chatty struct {
	nodes []actors.NodeName
	heard *sync.Map
}

type chatTick struct{}

func (p *chatty) Name() actors.ProtocolName { return "chatty" }

func (p *chatty) Init(ctx *actors.Context) error {
	actors.OnMessage(ctx, func(ctx *actors.Context, from actors.NodeName, _ *pb.Ping) error {
		p.heard.Store(string(from)+"→"+string(ctx.Node()), true)
		return nil
	})
	actors.OnTimer(ctx, func(ctx *actors.Context, _ *chatTick) error {
		for _, to := range p.nodes {
			if to != ctx.Node() {
				_ = ctx.Send(to, &pb.Ping{N: 1}) // ErrUnknownNode once a node failed
			}
		}
		return nil
	})
	ctx.Every(20*time.Millisecond, &chatTick{})
	return nil
}

// TestStopAfterAPeerDied: in a three-node cluster on loopback with SWIM,
// one node dies without a goodbye while the others send to it; Stop
// returns, whether the others have found it failed yet or not. It used
// to take 10 s (protoactor redialled the dead node; transport/remote's
// redial.go).
func TestStopAfterAPeerDied(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	for _, tc := range []struct {
		name       string
		waitFailed bool
	}{{"before SWIM finds it failed", false}, {"after SWIM finds it failed", true}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cluster.Local(3, cluster.Remote(), cluster.Membership(membership.Config{Preset: membership.PresetLocal}))
			if err != nil {
				t.Fatal(err)
			}
			names := c.Names()
			var heard sync.Map
			if err := c.Start(func() actors.Protocol { return &chatty{nodes: names, heard: &heard} }); err != nil {
				t.Fatal(err)
			}
			actortest.Eventually(t, 20*time.Second, "every node hears every other", func() bool {
				n := 0
				heard.Range(func(any, any) bool { n++; return true })
				return n == len(names)*(len(names)-1)
			})
			if err := c.Crash("node-3"); err != nil {
				t.Fatal(err)
			}
			if tc.waitFailed {
				actortest.Eventually(t, 20*time.Second, "the others find node-3 failed", func() bool {
					for _, m := range c.Members() {
						if slices.Contains(m.View().LiveNames(), "node-3") {
							return false
						}
					}
					return true
				})
			} else {
				// The scenario, not a synchronisation: the others go on
				// sending to the dead node-3 for a while before Stop.
				time.Sleep(100 * time.Millisecond)
			}
			start := time.Now()
			stopped := make(chan error, 1)
			go func() { stopped <- c.Stop() }()
			select { // a hang detector, not a performance bound
			case err := <-stopped:
				if err != nil {
					t.Errorf("Stop: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Stop did not return within 20 s")
			}
			t.Logf("Stop took %v", time.Since(start))
		})
	}
}

//go:build !race

// protoactor-go's remote is not race-clean (it rewrites gRPC's global
// logger on every start): like every test of protoactor remote
// (actortest.SkipRemoteUnderRace), the example runs without -race only.

package grains_test

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	local "github.com/troupe-dev/troupe/cluster"
	counter "github.com/troupe-dev/troupe/examples/grains"
	"github.com/troupe-dev/troupe/grains"
	"github.com/troupe-dev/troupe/membership"
	pb "github.com/troupe-dev/troupe/messages"
)

// Three nodes host the counter grain; a node that does not host it calls
// it; the node that does crashes, and the counter moves.
func Example() {
	// Every node announces the kind in its membership: the actor cluster
	// follows the nodes' SWIM membership, it runs none of its own.
	c, err := local.Local(3, local.Remote(), local.Membership(membership.Config{
		Preset: membership.PresetLocal, Kinds: []string{counter.Kind}}))
	if err != nil {
		panic(err)
	}
	defer c.Stop()
	g := map[actors.NodeName]*grains.Grains{}
	for _, n := range c.Nodes() {
		cfg := grains.Config{Kinds: []*cluster.Kind{counter.NewKind(string(n.Name()))}}
		if g[n.Name()], err = grains.Start(n, c.Remote, cfg); err != nil {
			panic(err)
		}
		defer g[n.Name()].Stop()
	}
	add := func(from actors.NodeName) (*pb.CounterValue, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		v, err := g[from].Request(ctx, "apples", counter.Kind, &pb.CounterAdd{Delta: 1})
		if err != nil {
			return nil, err
		}
		return v.(*pb.CounterValue), nil
	}

	// Wait until every node's actor cluster lists the three members: a
	// grain called before would live where a partial view puts it, and
	// move as the view fills.
	if err := actortest.WaitFor(20*time.Second, func() bool {
		for _, gg := range g {
			if gg.Members() != 3 {
				return false
			}
		}
		return true
	}); err != nil {
		panic(err)
	}
	v, err := add("node-1")
	if err != nil {
		panic(err)
	}
	home := actors.NodeName(v.Node)
	caller := actors.NodeName("node-1")
	if home == caller {
		caller = "node-2"
	}
	v, err = add(caller)
	fmt.Println("called from a node that does not host it:", err == nil && v.Node == string(home) && v.Node != string(caller), "count", v.GetValue())

	// The grain's node crashes: SWIM finds it failed, and the next call
	// activates the counter on a live member, from zero.
	if err := c.Crash(home); err != nil {
		panic(err)
	}
	err = actortest.WaitFor(20*time.Second, func() bool { v, err = add(caller); return err == nil })
	fmt.Println("moved to another node:", err == nil && v.Node != string(home), "count", v.GetValue())
	// Output:
	// called from a node that does not host it: true count 2
	// moved to another node: true count 1
}

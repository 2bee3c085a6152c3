package pingpong_test

import (
	"context"
	"fmt"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/examples/pingpong"
)

// Two nodes on the simulated network ping each other until each has three
// pongs.
func Example() {
	c, err := cluster.Local(2)
	if err != nil {
		panic(err)
	}
	defer c.Stop()
	for _, n := range c.Nodes() {
		peer := actors.NodeName("node-1")
		if n.Name() == "node-1" {
			peer = "node-2"
		}
		if err := n.Start(func() actors.Protocol { return &pingpong.PingPong{Peer: peer, Every: time.Millisecond} }); err != nil {
			panic(err)
		}
	}
	for _, n := range c.Nodes() {
		err := actortest.WaitFor(10*time.Second, func() bool {
			got, err := actors.Call(context.Background(), n, "pingpong", pingpong.Pongs{})
			return err == nil && got >= 3
		})
		fmt.Println(n.Name(), "has 3 pongs:", err == nil)
	}
	// Output:
	// node-1 has 3 pongs: true
	// node-2 has 3 pongs: true
}

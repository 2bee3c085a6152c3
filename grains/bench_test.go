package grains_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/grains"
	pb "github.com/troupe-dev/troupe/messages"
)

// BenchmarkGrainRequest is one grain request and its reply, one request
// outstanding, from node-1 to an echo grain active on node-1 (local) or
// on node-2 (remote, over loopback gRPC): Grains.Request's checks, the
// cached activation, a protoactor future and the grain.
func BenchmarkGrainRequest(b *testing.B) {
	_, g, _ := start(b, 2, grains.Config{}, nil)
	converge(b, g, 2)
	owned := map[uint64]string{} // an identity active on each node
	for i := 0; len(owned) < 2 && i < 1000; i++ {
		id := fmt.Sprintf("g-%d", i)
		got, err := ping(g["node-1"], id, 0, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		owned[got/1000] = id
	}
	for _, c := range []struct {
		name string
		home uint64
	}{{"local", 1}, {"remote", 2}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			msg := &pb.Ping{N: 1}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g["node-1"].Request(ctx, owned[c.home], "echo", msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

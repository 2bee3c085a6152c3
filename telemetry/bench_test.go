package telemetry_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/cluster"
	pb "github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/telemetry"
)

// sink counts Pings told to it and signals when it has seen want.
type sink struct {
	seen *atomic.Int64
	want int64
	done chan struct{}
}

func (s *sink) Name() actors.ProtocolName { return "sink" }
func (s *sink) Init(ctx *actors.Context) error {
	actors.OnTell(ctx, func(*actors.Context, *pb.Ping) error {
		if s.seen.Add(1) == s.want {
			close(s.done)
		}
		return nil
	})
	return nil
}

// BenchmarkLocalDeliveryProtoactorMetrics is actors' BenchmarkLocalDelivery
// (a Ref.Tell to an OnTell handler on one node) without and with
// protoactor's own metrics (actors.Config.MetricProvider), which time
// every message and record it in an OpenTelemetry histogram.
func BenchmarkLocalDeliveryProtoactorMetrics(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			var opts []cluster.Option
			if on {
				mp, err := telemetry.ProtoactorMeterProvider(telemetry.NewRegistry(nil))
				if err != nil {
					b.Fatal(err)
				}
				opts = append(opts, cluster.NodeConfig(func(_ int, c *actors.Config) { c.MetricProvider = mp }))
			}
			cl, err := cluster.Local(1, opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Stop()
			s := &sink{seen: &atomic.Int64{}, want: int64(b.N), done: make(chan struct{})}
			n := cl.Nodes()[0]
			if err := n.Start(func() actors.Protocol { return s }); err != nil {
				b.Fatal(err)
			}
			ref, err := n.Ref("sink")
			if err != nil {
				b.Fatal(err)
			}
			msg := &pb.Ping{N: 1}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := ref.Tell(msg); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-s.done:
			case <-time.After(time.Minute):
				b.Fatalf("%d of %d messages arrived", s.seen.Load(), b.N)
			}
		})
	}
}

// BenchmarkSnapshot measures what one event of the dashboard's stream
// costs: a snapshot of a 3-node cluster from its node's telemetry protocol,
// encoded as JSON.
func BenchmarkSnapshot(b *testing.B) {
	c := newCluster(b, 3, testConfig(nil))
	n := c.Node("node-1")
	size := 0
	for b.Loop() {
		s, err := actors.Call(context.Background(), n, telemetry.Name, telemetry.SnapshotRequest{})
		if err != nil {
			b.Fatal(err)
		}
		raw, err := json.Marshal(s)
		if err != nil {
			b.Fatal(err)
		}
		size = len(raw)
	}
	b.ReportMetric(float64(size), "bytes/snapshot")
}

package mutex_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/mutex"
)

// BenchmarkRicartAgrawalaEntry: one node enters and leaves the critical
// section over and over, on a benign sim network (an op is one entry:
// 2(N-1) messages and the release).
func BenchmarkRicartAgrawalaEntry(b *testing.B) {
	for _, n := range []int{3, 5} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			c := newRA(b, n)
			cl := client(b, c.Node("node-1"))
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				g, err := cl.Lock(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if err := cl.Unlock(ctx, g); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRicartAgrawalaContended: every node wants the section at once;
// an op is one entry of any node.
func BenchmarkRicartAgrawalaContended(b *testing.B) {
	for _, n := range []int{3, 5} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			c := newRA(b, n)
			per := max(1, b.N/n)
			chk := &checker{}
			b.ResetTimer()
			if err := exercise(c, mutex.Name, per, time.Minute, chk); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if _, overlaps := chk.result(); len(overlaps) > 0 {
				b.Fatal(overlaps)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(per*n), "ns/entry")
		})
	}
}

// BenchmarkLeaseAcquire: acquire and release of one lease lock through a
// follower and through the leader of a 3-node raft group on the sim
// network, with fsync on (sync) and off (nosync). An op is an acquire and
// a release: two log entries committed one after the other.
func BenchmarkLeaseAcquire(b *testing.B) {
	for _, sync := range []bool{true, false} {
		for _, via := range []string{"follower", "leader"} {
			name := "nosync"
			if sync {
				name = "sync"
			}
			b.Run(name+"/via="+via, func(b *testing.B) {
				c := consensustest.Start(b, consensustest.Options{Seed: 31, Machines: []consensus.Machine{mutex.LockMachine()},
					Config: func(cfg *consensus.Config) { // the product's timing
						d := consensus.DefaultConfig()
						cfg.TickInterval, cfg.ElectionTicks, cfg.HeartbeatTicks, cfg.RequestTimeout = d.TickInterval, d.ElectionTicks, d.HeartbeatTicks, d.RequestTimeout
						cfg.NoSync = !sync
					}}).Cluster
				lead := raftLeader(b, c)
				node := lead
				if via == "follower" {
					for _, n := range c.Names() {
						if n != lead {
							node = n
							break
						}
					}
				}
				l := leases(b, c, node)
				ctx := context.Background()
				var acquire time.Duration
				b.ResetTimer()
				for b.Loop() {
					start := time.Now()
					lease, err := l.Acquire(ctx, "bench", time.Minute, "bench")
					if err != nil {
						b.Fatal(err)
					}
					acquire += time.Since(start)
					if err := l.Release(ctx, "bench", lease.Token); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(acquire.Microseconds())/float64(b.N), "µs/acquire")
			})
		}
	}
}

package commit_test

import (
	"testing"
	"time"

	"github.com/troupe-dev/troupe/commit"
)

// BenchmarkTransfer measures one transfer between the ledgers of two
// nodes, coordinated by a third, on the sim network: the time until the
// client has the outcome (decided; the participants apply it after), one
// transfer at a time. fsync=on syncs every log write (the commit logs, the
// ledgers and in Consensus mode the raft logs); fsync=off does not.
// msgs/tx counts the commit protocol's messages, raft-msgs/tx the
// consensus group's (heartbeats included).
func BenchmarkTransfer(b *testing.B) {
	for _, mode := range modes {
		for _, sync := range []bool{false, true} {
			name := string(mode) + "/fsync=off"
			var opts []envOption
			if sync {
				name = string(mode) + "/fsync=on"
				opts = append(opts, withSync())
			}
			b.Run(name, func(b *testing.B) {
				opts = append(opts, withConfig(func(c *commit.Config) { c.RetryInterval = 200 * time.Millisecond; c.MaxRetryInterval = time.Second }))
				e := newEnv(b, 3, mode, 30, opts...)
				from, to := acct("node-2", "a"), acct("node-3", "a")
				txs := [2]commit.Transaction{e.transfer(from, to, 1), e.transfer(to, from, 1)}
				before, raftBefore := messages(e.c.Hub, commit.Name), messages(e.c.Hub, "raft")
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					out, err := e.do("node-1", txs[i%2])
					if err != nil || !out.Committed {
						b.Fatalf("%+v, %v", out, err)
					}
				}
				b.StopTimer()
				e.waitQuiet(10e9)
				after, raftAfter := messages(e.c.Hub, commit.Name), messages(e.c.Hub, "raft")
				b.ReportMetric(float64(sum(after)-sum(before))/float64(b.N), "msgs/tx")
				b.ReportMetric(float64(sum(raftAfter)-sum(raftBefore))/float64(b.N), "raft-msgs/tx")
			})
		}
	}
}

func sum(m map[string]int64) int64 {
	var s int64
	for _, v := range m {
		s += v
	}
	return s
}

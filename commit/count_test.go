package commit_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/commit"
	"github.com/troupe-dev/troupe/examples/bank"
	"github.com/troupe-dev/troupe/transport/sim"
)

// messages counts the commit protocol's messages sent so far, by type
// (the short protobuf name: "TxPrepare").
func messages(h *sim.Hub, protocol actors.ProtocolName) map[string]int64 {
	out := map[string]int64{}
	for _, r := range h.Stats() {
		if r.Protocol == string(protocol) {
			out[r.Type[strings.LastIndexByte(r.Type, '.')+1:]] += r.Sent
		}
	}
	return out
}

// TestMessagesPerTransaction counts the messages of committed transactions
// with N participants on a benign network, the coordinator apart from the
// participants or one of them: Prepare, vote, decision and ack once per
// participant reached over the network, nothing else (Gray and Lamport's
// 3N−1 counts no acks and one message less, see docs/commit.md).
func TestMessagesPerTransaction(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			// No retransmission can happen: every timer is far beyond a
			// transaction's duration, even on a loaded machine.
			e := newEnv(t, 6, mode, 20, withConfig(func(c *commit.Config) {
				c.RetryInterval, c.MaxRetryInterval = 5*time.Second, 5*time.Second
				c.PrepareTimeout, c.VoteTimeout, c.AbandonAfter = 10*time.Second, 10*time.Second, 20*time.Second
			}))
			const txs = 5
			for n := 2; n <= 5; n++ {
				for _, colocated := range []bool{false, true} {
					first, remote := 2, n // node-1 coordinates; the participants are node-2..node-(n+1)
					if colocated {
						first, remote = 1, n-1 // node-1..node-n
					}
					changes := map[bank.Account]int64{acct(actors.NodeName(fmt.Sprintf("node-%d", first)), "a"): -int64(n - 1)}
					for i := first + 1; i < first+n; i++ {
						changes[acct(actors.NodeName(fmt.Sprintf("node-%d", i)), "a")] = 1
					}
					tx, err := bank.Move(changes)
					if err != nil {
						t.Fatal(err)
					}
					before, raftBefore := messages(e.c.Hub, commit.Name), messages(e.c.Hub, "raft")
					for range txs {
						if out, err := e.do("node-1", tx); err != nil || !out.Committed {
							t.Fatalf("%+v, %v", out, err)
						}
					}
					e.waitQuiet(5 * time.Second) // every ack is in
					after, raftAfter := messages(e.c.Hub, commit.Name), messages(e.c.Hub, "raft")
					var total int64
					for _, typ := range []string{"TxPrepare", "TxVote", "TxDecision", "TxAck", "TxQuery"} {
						got := (after[typ] - before[typ]) / txs
						want := int64(remote)
						if typ == "TxQuery" {
							want = 0
						}
						if got != want || (after[typ]-before[typ])%txs != 0 {
							t.Errorf("N=%d colocated=%v: %d %s in %d transactions, want %d each", n, colocated, after[typ]-before[typ], typ, txs, want)
						}
						total += got
					}
					var raft int64
					for typ := range raftAfter {
						raft += raftAfter[typ] - raftBefore[typ]
					}
					t.Logf("N=%d coordinator %-12s messages per transaction %2d (3N-1 = %2d); raft messages per transaction, heartbeats included: %.1f",
						n, map[bool]string{false: "apart", true: "participant"}[colocated], total, 3*n-1, float64(raft)/txs)
				}
			}
			e.checkTotal()
		})
	}
}

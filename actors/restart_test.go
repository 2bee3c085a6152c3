package actors_test

import (
	"slices"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
)

// TestReliableStreamSurvivesReceiverRestart: a receiver that crashes and
// restarts is a new incarnation with no memory of the stream; the sender
// must start a new stream to it instead of resending numbers the new
// incarnation never expects. Messages sent while it was down reach the new
// incarnation, in order, once.
func TestReliableStreamSurvivesReceiverRestart(t *testing.T) {
	actortest.Virtual(t, testReliableStreamSurvivesReceiverRestart)
}

func testReliableStreamSurvivesReceiverRestart(t *testing.T) {
	c := clustertest.NewCluster(t, 2, cluster.NodeConfig(func(_ int, cfg *actors.Config) {
		cfg.Reliable = actors.ReliableConfig{RTO: 10 * time.Millisecond, MaxRTO: 50 * time.Millisecond, MaxInFlight: 100, RecvWindow: 100}
	}))
	rec := &recorder{got: map[string][]uint64{}}
	if err := c.Start(relProtocol(rec)); err != nil {
		t.Fatal(err)
	}
	send := func(from, n uint64) {
		t.Helper()
		if err := c.Node("node-1").Tell("rel", &sendN{to: []actors.NodeName{"node-2"}, from: from, n: n, reliable: true}); err != nil {
			t.Fatal(err)
		}
	}
	send(1, 10)
	actortest.Eventually(t, 10*time.Second, "first 10 delivered", func() bool { return len(rec.of("node-2", "node-1")) == 10 })

	if err := c.Crash("node-2"); err != nil {
		t.Fatal(err)
	}
	send(11, 5) // while node-2 is down
	if _, err := c.Restart("node-2"); err != nil {
		t.Fatal(err)
	}
	send(16, 5)
	var want []uint64
	for i := uint64(1); i <= 20; i++ {
		want = append(want, i)
	}
	actortest.Eventually(t, 10*time.Second, "messages 11..20 reach the restarted node", func() bool {
		return len(rec.of("node-2", "node-1")) >= 20
	})
	flush(t, c.Node("node-2"), "rel")
	if got := rec.of("node-2", "node-1"); !slices.Equal(got, want) {
		t.Fatalf("node-2 received %v; want 1..20 once each, in order", got)
	}
}

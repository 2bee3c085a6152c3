package membership_test

import (
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/membership"
)

// foreignNode starts a bare memberlist node, free to pick any name, and
// joins it to addr.
func foreignNode(t *testing.T, name, addr string) {
	t.Helper()
	cfg := memberlist.DefaultLocalConfig()
	cfg.Name = name
	cfg.BindAddr, cfg.BindPort, cfg.AdvertisePort = "127.0.0.1", 0, 0
	cfg.LogOutput = io.Discard
	cfg.ProbeInterval, cfg.GossipInterval = 100*time.Millisecond, 30*time.Millisecond
	ml, err := memberlist.Create(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	// The push-pull reaches the node, which refuses the name: the join may
	// report success (the exchange happened) or not; what counts is the
	// node's view.
	_, _ = ml.Join([]string{addr})
}

// TestGossipedNamesFollowTheNodeNameRule: members whose names are not node
// names (a slash, 300 characters) are refused — not in the view, in no
// event — and counted; a well-named node joins as usual.
func TestGossipedNamesFollowTheNodeNameRule(t *testing.T) {
	var logs syncBuffer
	n, err := start(t, membership.Config{Name: "node-1", Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	long := strings.Repeat("a", 300)
	foreignNode(t, "evil/slash", n.GossipAddr())
	foreignNode(t, long, n.GossipAddr())
	foreignNode(t, "fine-name", n.GossipAddr())
	actortest.Eventually(t, 10*time.Second, "the well-named node joins and both others are refused", func() bool {
		return slices.Contains(n.View().LiveNames(), "fine-name") && n.Stats().RefusedMembers >= 2
	})
	if got := n.View().LiveNames(); !slices.Equal(got, []actors.NodeName{"fine-name", "node-1"}) {
		t.Errorf("view %v, want [fine-name node-1]", got)
	}
	for _, bad := range []actors.NodeName{"evil/slash", actors.NodeName(long)} {
		if saw[*membership.MemberJoined](n.rec, bad) || saw[*membership.MemberUpdated](n.rec, bad) {
			t.Errorf("an event names the refused member %.20q…", bad)
		}
	}
	if !strings.Contains(logs.String(), `member name \"evil/slash\" has '/' at byte 4`) {
		t.Errorf("the log does not say why evil/slash was refused:\n%.2000s", logs.String())
	}
}

// TestGarbagePacketsAreLoggedRateLimited: 10k garbage UDP packets to the
// gossip port log a bounded number of lines, and the rest is counted.
func TestGarbagePacketsAreLoggedRateLimited(t *testing.T) {
	var logs syncBuffer
	n, err := start(t, membership.Config{Name: "node-1", Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	conn, err := net.Dial("udp", n.GossipAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	const packets, burst = 10000, 100
	before := n.Stats().PacketsReceived
	buf := make([]byte, 64)
	for sent := 0; sent < packets; {
		for range burst {
			b := buf[:1+rng.IntN(len(buf))]
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			if _, err := conn.Write(b); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		// Paced, so that the socket's buffer never overflows.
		actortest.Eventually(t, 10*time.Second, "the burst received", func() bool {
			return n.Stats().PacketsReceived-before >= int64(sent)
		})
	}
	actortest.Eventually(t, 10*time.Second, "most garbage lines held back", func() bool {
		return n.Stats().LogSuppressed >= packets/2
	})
	lines := strings.Count(logs.String(), `"source":"memberlist"`)
	if lines == 0 || lines > 20 {
		t.Errorf("%d memberlist log lines for %d garbage packets, want 1 to 20:\n%.3000s", lines, packets, logs.String())
	}
	t.Logf("%d lines, %d suppressed", lines, n.Stats().LogSuppressed)
}

package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/config"
	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/transport/remote"
)

// TestRunStopsAfterAPeerDied: two `node run` nodes and a third member that
// dies without a goodbye while they send to it (telemetry, election);
// SIGTERM (the context's end) stops both. It used to take 10 s or more:
// protoactor redialled the dead member (transport/remote's redial.go).
func TestRunStopsAfterAPeerDied(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	ports := actortest.FreePorts(t, 6)
	names := []string{"n1", "n2"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, len(names))
	for i, name := range names {
		flags := loopbackFlags(name, ports[3*i:])
		if i > 0 {
			flags["membership.join"] = fmt.Sprintf("127.0.0.1:%d", ports[1])
		}
		go func() { done <- runNode(ctx, config.Sources{Flags: flags}) }()
	}
	// The third member: a node with membership only, which will die.
	net, err := remote.New(remote.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := actors.DefaultConfig()
	cfg.Name, cfg.Network = "n3", net
	n3, err := actors.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m3, err := membership.New(membership.Config{Name: "n3", Address: n3.Address(), Preset: membership.PresetLocal,
		Bind: "127.0.0.1:0", Seeds: []string{fmt.Sprintf("127.0.0.1:%d", ports[1])}})
	if err != nil {
		t.Fatal(err)
	}
	var joinErr error
	if err := actortest.WaitFor(20*time.Second, func() bool { joinErr = m3.Join(ctx); return joinErr == nil }); err != nil {
		select { // a node that could not start says why
		case runErr := <-done:
			t.Fatalf("n3 joining: %v (last attempt: %v); a node stopped with: %v", err, joinErr, runErr)
		default:
			t.Fatalf("n3 joining: %v (last attempt: %v); both nodes still run", err, joinErr)
		}
	}
	if _, err := membership.Attach(n3, m3); err != nil {
		t.Fatal(err)
	}
	m3.FeedPeers(net)
	actortest.Eventually(t, 20*time.Second, "n3 sees the three members", func() bool { return len(m3.View().LiveNames()) == 3 })
	// n3 runs no protocol: what n1 and n2 send it counts as UnknownProtocol.
	actortest.Eventually(t, 20*time.Second, "n1 and n2 talk to n3", func() bool { return n3.Stats().UnknownProtocol >= 10 })
	// n3 dies: no goodbye to the cluster.
	_ = m3.Shutdown()
	_ = n3.Stop()
	// The scenario, not a synchronisation: n1 and n2 go on sending to the
	// dead n3 for a while (runNode shows no count of those sends to wait on).
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	cancel()
	for range names {
		select { // a hang detector, not a performance bound
		case err := <-done:
			if err != nil {
				t.Errorf("node stopped with %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a node did not stop within 20 s of SIGTERM")
		}
	}
	t.Logf("SIGTERM to both nodes' return: %v", time.Since(start))
}

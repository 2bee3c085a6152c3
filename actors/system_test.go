package actors_test

import (
	"log/slog"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/transport/sim"
)

// TestGivenSystemOutlivesTheNode: a node on a given actor system runs its
// protocols there, leaves the system running when it stops, and a later
// node of the same name (a restart) runs on it again.
func TestGivenSystemOutlivesTheNode(t *testing.T) {
	hub, err := sim.New(sim.Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	defer system.Shutdown()
	for incarnation := range 2 {
		n, err := actors.NewNode(actors.Config{Name: "node-1", Network: hub, System: system})
		if err != nil {
			t.Fatal(err)
		}
		if n.System() != system {
			t.Fatalf("incarnation %d runs on its own actor system, not the given one", incarnation)
		}
		if err := n.Start(protocol("p", func(*actors.Context) error { return nil })); err != nil {
			t.Fatalf("incarnation %d: %v", incarnation, err)
		}
		flush(t, n, "p")
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
		if system.IsStopped() {
			t.Fatalf("incarnation %d's Stop shut the given actor system down", incarnation)
		}
	}
}

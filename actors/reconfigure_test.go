package actors_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
)

// sized is a protocol whose one setting, a size, changes at run time.
type sized struct {
	size  int // from the factory
	inits int
}

type sizeConfig struct{ Size int }
type getSize struct{ actors.Returns[int] }

func (s *sized) Name() actors.ProtocolName { return "sized" }
func (s *sized) Init(ctx *actors.Context) error {
	actors.OnReconfigure(ctx, func(_ *actors.Context, c sizeConfig) error {
		if c.Size < 1 || c.Size > 10 {
			return fmt.Errorf("size %d: must be 1..10", c.Size)
		}
		s.size = c.Size
		return nil
	})
	actors.OnRequest(ctx, func(*actors.Context, getSize) (int, error) { return s.size, nil })
	actors.OnTell(ctx, func(*actors.Context, boom) error { panic("boom") })
	return nil
}

func TestReconfigure(t *testing.T) { actortest.Virtual(t, testReconfigure) }

func testReconfigure(t *testing.T) {
	n := singleNode(t, nil)
	events := make(chan *actors.ProtocolReconfigured, 4)
	cancel, err := actors.Observe(n, func(e *actors.ProtocolReconfigured) { events <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	if err := n.Start(func() actors.Protocol { return &sized{size: 2} }); err != nil {
		t.Fatal(err)
	}
	size := func() int {
		t.Helper()
		v, err := actors.Call(context.Background(), n, "sized", getSize{})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ctx := context.Background()
	if err := n.Reconfigure(ctx, "sized", sizeConfig{Size: 5}); err != nil {
		t.Fatalf("a valid change: %v", err)
	}
	if got := size(); got != 5 {
		t.Fatalf("size after reconfiguring to 5: %d", got)
	}
	ev := actortest.Receive(t, events, wait, "ProtocolReconfigured")
	if ev.Protocol != "sized" || ev.Config.(sizeConfig).Size != 5 {
		t.Fatalf("event %+v", ev)
	}

	err = n.Reconfigure(ctx, "sized", sizeConfig{Size: 11})
	if !errors.Is(err, actors.ErrReconfigureRefused) {
		t.Fatalf("an invalid change: %v, want ErrReconfigureRefused", err)
	}
	if want := "size 11: must be 1..10"; !strings.Contains(err.Error(), want) {
		t.Fatalf("refusal %q does not carry the handler's reason %q", err, want)
	}
	if got := size(); got != 5 {
		t.Fatalf("size after a refused change: %d, want 5 (kept)", got)
	}

	err = n.Reconfigure(ctx, "sized", struct{ Other bool }{true})
	if !errors.Is(err, actors.ErrNoHandler) {
		t.Fatalf("a configuration of a type without a handler: %v, want ErrNoHandler", err)
	}
	if err := n.Reconfigure(ctx, "nosuch", sizeConfig{Size: 1}); !errors.Is(err, actors.ErrUnknownProtocol) {
		t.Fatalf("an unknown protocol: %v", err)
	}

	// A supervised restart makes a fresh value from the factory (size 2);
	// the runtime hands it the accepted configuration again.
	_ = n.Tell("sized", boom{})
	actortest.Eventually(t, wait, "a restart", func() bool { return n.Stats().Protocols["sized"].Restarts == 1 })
	if got := size(); got != 5 {
		t.Fatalf("size after a restart: %d, want 5 (the accepted configuration, not the factory's 2)", got)
	}
	if s := n.Stats().Protocols["sized"]; s.Reconfigured != 1 {
		t.Fatalf("Reconfigured = %d, want 1", s.Reconfigured)
	}
}

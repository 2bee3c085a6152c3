package actors_test

import (
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
)

// TestAnswerToInitIsNotLost: a protocol's first Init sends, and the peer's
// best-effort answer reaches the node before Start has published the
// protocol (here Init waits until the peer has sent it). The answer waits
// in the mailbox behind Init; it used to be dropped as addressed to "a
// protocol this node does not run", on a network that loses nothing.
func TestAnswerToInitIsNotLost(t *testing.T) {
	c, err := cluster.Local(2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	answered := make(chan struct{})
	if err := c.Node("node-2").Start(protocol("waver", func(ctx *actors.Context) error {
		actors.OnMessage(ctx, func(ctx *actors.Context, from actors.NodeName, m *hello) error {
			if err := ctx.Send(from, &hello{N: m.N + 1}); err != nil {
				return err
			}
			ctx.Flush()
			close(answered)
			return nil
		})
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	got := make(chan uint64, 1)
	if err := c.Node("node-1").Start(protocol("waver", func(ctx *actors.Context) error {
		actors.OnMessage(ctx, func(_ *actors.Context, _ actors.NodeName, m *hello) error { got <- m.N; return nil })
		if err := ctx.Send("node-2", &hello{N: 1}); err != nil {
			return err
		}
		ctx.Flush()
		<-answered // the answer is on its way before Init returns
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	if n := actortest.Receive(t, got, 10*time.Second, "the answer to Init's message"); n != 2 {
		t.Fatalf("answer %d, want 2", n)
	}
	if s := c.Node("node-1").Stats(); s.UnknownProtocol != 0 {
		t.Fatalf("node-1 dropped %d messages for a protocol it did not run yet", s.UnknownProtocol)
	}
}

package actortest

import (
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
)

// Impostor stands in for a protocol on a node and sends, as that protocol,
// messages the real one would never send (a stale leader's orders, a
// forged announcement), so a test can check how the other nodes take them.
type Impostor struct {
	name actors.ProtocolName
	sent chan error
}

// NewImpostor returns an impostor of the protocol named name; start it on a
// node with Node.Start(i.Factory()) in place of the real protocol.
func NewImpostor(name actors.ProtocolName) *Impostor {
	return &Impostor{name: name, sent: make(chan error, 1)}
}

// Factory makes the impostor's protocol.
func (i *Impostor) Factory() actors.Factory {
	return func() actors.Protocol { return &impostor{i} }
}

// Send has the impostor on node n send m to node `to` (reliably or not),
// and fails the test if the send fails or does not happen within 5s.
// Messages sent reliably, one after another, arrive in that order. m is
// what Context.Send takes: a protobuf message or a registered struct's
// pointer.
func (i *Impostor) Send(t testing.TB, n *actors.Node, to actors.NodeName, m any, reliable bool) {
	t.Helper()
	if err := n.Tell(i.name, &impostorSend{to: to, m: m, reliable: reliable}); err != nil {
		t.Fatal(err)
	}
	if err := Receive(t, i.sent, 5*time.Second, "impostor's send"); err != nil {
		t.Fatalf("impostor of %s sending %T to %s: %v", i.name, m, to, err)
	}
}

type impostor struct{ *Impostor }

type impostorSend struct {
	to       actors.NodeName
	m        any
	reliable bool
}

func (p *impostor) Name() actors.ProtocolName { return p.name }

func (p *impostor) Init(ctx *actors.Context) error {
	actors.OnTell(ctx, func(ctx *actors.Context, s *impostorSend) error {
		send := ctx.Send
		if s.reliable {
			send = ctx.SendReliable
		}
		p.sent <- send(s.to, s.m)
		return nil
	})
	return nil
}

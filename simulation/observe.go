package simulation

import (
	"fmt"

	"github.com/troupe-dev/troupe/actors"
)

// Observe calls fn with every notification of type T published on any
// node, with the node's name, as the node's protocols get it: a checker's
// eyes. It starts a protocol of its own on every node (and on nodes
// restarted later); call it in Setup before starting the protocols it
// watches, so that it sees their first notifications too.
func Observe[T any](w *World, fn func(node actors.NodeName, ev T)) error {
	w.observed++
	name := actors.ProtocolName(fmt.Sprintf("sim-observe-%d", w.observed))
	return w.Start(func() actors.Protocol { return &probe[T]{name: name, fn: fn} })
}

type probe[T any] struct {
	name actors.ProtocolName
	fn   func(actors.NodeName, T)
}

func (p *probe[T]) Name() actors.ProtocolName { return p.name }

func (p *probe[T]) Init(ctx *actors.Context) error {
	actors.OnNotification(ctx, func(ctx *actors.Context, ev T) error {
		p.fn(ctx.Node(), ev)
		return nil
	})
	return nil
}

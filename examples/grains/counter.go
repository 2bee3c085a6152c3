package grains

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	pb "github.com/troupe-dev/troupe/messages"
)

// Kind is the name of the counter grain kind.
const Kind = "counter"

// NewKind returns the counter grain kind of a node named node, for
// grains.Config.Kinds.
func NewKind(node string) *cluster.Kind {
	return cluster.NewKind(Kind, actor.PropsFromProducer(func() actor.Actor { return &Counter{node: node} }))
}

// Counter is a grain: one per identity in the cluster, activated on the
// member that owns the identity when it is first called. Its count lives
// in memory only: when its node fails, the next call activates it on
// another member, from zero.
type Counter struct {
	node  string
	value int64
}

// Receive adds a CounterAdd to the count and answers with the count and
// the node the grain is active on.
func (c *Counter) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*pb.CounterAdd); ok {
		c.value += m.Delta
		ctx.Respond(&pb.CounterValue{Value: c.value, Node: c.node})
	}
}

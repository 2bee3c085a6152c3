package actors_test

import (
	"context"
	"fmt"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/messages"
)

// Hi and HiBack are a protocol's wire messages: plain structs, registered
// once each, with no .proto file.
type Hi struct{ From actors.NodeName }

type HiBack struct{ Reply string }

var (
	_ = messages.Register[Hi]("example.Hi")
	_ = messages.Register[HiBack]("example.HiBack")
)

// Waver says hi to a peer at start and keeps the answer.
type Waver struct {
	Peer  actors.NodeName
	heard string
}

// Heard asks a Waver what it heard back.
type Heard struct{ actors.Returns[string] }

func (w *Waver) Name() actors.ProtocolName { return "waver" }

func (w *Waver) Init(ctx *actors.Context) error {
	actors.OnMessage(ctx, func(ctx *actors.Context, from actors.NodeName, m *Hi) error {
		return ctx.Send(from, &HiBack{Reply: "hi " + string(m.From) + ", from " + string(ctx.Node())})
	})
	actors.OnMessage(ctx, func(_ *actors.Context, _ actors.NodeName, m *HiBack) error {
		w.heard = m.Reply
		return nil
	})
	actors.OnRequest(ctx, func(*actors.Context, Heard) (string, error) { return w.heard, nil })
	if w.Peer == "" {
		return nil
	}
	return ctx.SendReliable(w.Peer, &Hi{From: ctx.Node()})
}

// Two nodes exchange struct messages: sent and handled as pointers, like
// protobuf messages.
func Example_structMessages() {
	c, err := cluster.Local(2)
	if err != nil {
		panic(err)
	}
	defer c.Stop()
	if err := c.Node("node-2").Start(func() actors.Protocol { return &Waver{} }); err != nil {
		panic(err)
	}
	if err := c.Node("node-1").Start(func() actors.Protocol { return &Waver{Peer: "node-2"} }); err != nil {
		panic(err)
	}
	var heard string
	_ = actortest.WaitFor(10*time.Second, func() bool {
		heard, _ = actors.Call(context.Background(), c.Node("node-1"), "waver", Heard{})
		return heard != ""
	})
	fmt.Println(heard)
	// Output:
	// hi node-1, from node-2
}

package actors_test

import (
	"context"
	"fmt"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/transport/sim"
)

// Greeter answers local requests; its state is set up in Init.
type Greeter struct{ greeting string }

// Greet asks a Greeter to greet Name.
// Farewell is a request the greeter has no handler for.
type Farewell struct{ actors.Returns[string] }

type Greet struct {
	actors.Returns[string]
	Name string
}

func (g *Greeter) Name() actors.ProtocolName { return "greeter" }

func (g *Greeter) Init(ctx *actors.Context) error {
	g.greeting = "hello"
	actors.OnRequest(ctx, func(ctx *actors.Context, r Greet) (string, error) {
		return fmt.Sprintf("%s %s, from %s", g.greeting, r.Name, ctx.Node()), nil
	})
	return nil
}

// A node on a simulated network runs one protocol; Call asks it from outside.
func Example() {
	hub, _ := sim.New(sim.Config{})
	defer hub.Close()
	node, err := actors.NewNode(actors.Config{Name: "a", Network: hub})
	if err != nil {
		panic(err)
	}
	defer node.Stop()
	if err := node.Start(func() actors.Protocol { return &Greeter{} }); err != nil {
		panic(err)
	}
	reply, err := actors.Call(context.Background(), node, "greeter", Greet{Name: "world"})
	fmt.Println(reply, err)
	_, err = actors.Call(context.Background(), node, "greeter", Farewell{})
	fmt.Println(err)
	// Output:
	// hello world, from a <nil>
	// actors: no handler for message type: protocol greeter on node a has no request handler for actors_test.Farewell
}

package pingpong

import (
	"time"

	"github.com/troupe-dev/troupe/actors"
	pb "github.com/troupe-dev/troupe/messages"
)

// PingPong pings `Peer` every `Every` and counts the answers.
type PingPong struct {
	Peer  actors.NodeName
	Every time.Duration
	pongs uint64
}

type tick struct{}

// Pongs asks a PingPong how many pongs it has received.
type Pongs struct{ actors.Returns[uint64] }

func (p *PingPong) Name() actors.ProtocolName { return "pingpong" }

func (p *PingPong) Init(ctx *actors.Context) error {
	actors.OnMessage(ctx, p.onPing)
	actors.OnMessage(ctx, p.onPong)
	actors.OnTimer(ctx, p.onTick)
	actors.OnRequest(ctx, func(*actors.Context, Pongs) (uint64, error) { return p.pongs, nil })
	ctx.Every(p.Every, tick{})
	return nil
}

func (p *PingPong) onTick(ctx *actors.Context, _ tick) error {
	return ctx.Send(p.Peer, &pb.Ping{N: p.pongs})
}

func (p *PingPong) onPing(ctx *actors.Context, from actors.NodeName, m *pb.Ping) error {
	return ctx.Send(from, &pb.Pong{N: m.N})
}

func (p *PingPong) onPong(ctx *actors.Context, from actors.NodeName, m *pb.Pong) error {
	p.pongs++
	return nil
}

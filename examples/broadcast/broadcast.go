package broadcast

import (
	"fmt"
	"slices"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/messages"
)

// Name is the protocol's name on every node.
const Name actors.ProtocolName = "broadcast"

// BroadcastRequest asks the local broadcast protocol to broadcast Payload.
// The reply is the message's id.
type BroadcastRequest struct {
	actors.Returns[uint64]
	Payload []byte
}

// DeliverReply is published on a node for every message it delivers,
// exactly once per message.
type DeliverReply struct {
	Node, Origin actors.NodeName
	ID           uint64
	Payload      []byte
}

// NeighbourUp adds a node to the neighbours messages are flooded to.
type NeighbourUp struct{ Node actors.NodeName }

// NeighbourDown removes a node from the neighbours.
type NeighbourDown struct{ Node actors.NodeName }

// BroadcastMessage is the gossip: the origin floods it to its neighbours,
// who deliver it once and forward it. A plain struct, registered once as a
// wire message; no .proto file.
type BroadcastMessage struct {
	Origin  actors.NodeName // node that broadcast it first
	ID      uint64          // unique per origin
	Payload []byte          // application data
}

var _ = messages.Register[BroadcastMessage]("broadcast.BroadcastMessage")

// GarbageCollectTimer is the periodic timer that forgets old message ids.
type GarbageCollectTimer struct{}

// Config sets up the protocol.
type Config struct {
	Neighbours []actors.NodeName // initial neighbours (other nodes)
	GCInterval time.Duration     // how often GarbageCollectTimer fires
	Retain     time.Duration     // how long a delivered id is remembered
}

// DefaultConfig has no neighbours, collects every 10s and remembers ids for
// a minute.
func DefaultConfig() Config {
	return Config{GCInterval: 10 * time.Second, Retain: time.Minute}
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	if c.GCInterval <= 0 || c.Retain <= 0 {
		return fmt.Errorf("broadcast: GCInterval (%v) and Retain (%v) must be positive", c.GCInterval, c.Retain)
	}
	return nil
}

type msgID struct {
	origin actors.NodeName
	id     uint64
}

// Broadcast is the protocol's state.
type Broadcast struct {
	cfg        Config
	neighbours []actors.NodeName // sorted, so forwarding order is reproducible
	seen       map[msgID]time.Time
}

// New returns a factory for nodes' Start.
func New(cfg Config) actors.Factory {
	return func() actors.Protocol { return &Broadcast{cfg: cfg} }
}

func (b *Broadcast) Name() actors.ProtocolName { return Name }

func (b *Broadcast) Init(ctx *actors.Context) error {
	if err := b.cfg.Validate(); err != nil {
		return err
	}
	b.seen = map[msgID]time.Time{}
	b.neighbours = nil
	for _, n := range b.cfg.Neighbours {
		b.addNeighbour(ctx, n)
	}
	actors.OnRequest(ctx, b.onBroadcastRequest)
	actors.OnMessage(ctx, b.onBroadcastMessage)
	actors.OnNotification(ctx, func(ctx *actors.Context, n *NeighbourUp) error { b.addNeighbour(ctx, n.Node); return nil })
	actors.OnNotification(ctx, func(_ *actors.Context, n *NeighbourDown) error { b.removeNeighbour(n.Node); return nil })
	actors.OnTimer(ctx, b.onGarbageCollect)
	ctx.Every(b.cfg.GCInterval, GarbageCollectTimer{})
	return nil
}

func (b *Broadcast) onBroadcastRequest(ctx *actors.Context, req *BroadcastRequest) (uint64, error) {
	m := &BroadcastMessage{Origin: ctx.Node(), ID: ctx.Rand().Uint64(), Payload: req.Payload}
	b.deliver(ctx, m)
	return m.ID, b.forward(ctx, m, "")
}

func (b *Broadcast) onBroadcastMessage(ctx *actors.Context, from actors.NodeName, m *BroadcastMessage) error {
	if _, dup := b.seen[msgID{m.Origin, m.ID}]; dup {
		return nil
	}
	b.deliver(ctx, m)
	return b.forward(ctx, m, from)
}

func (b *Broadcast) deliver(ctx *actors.Context, m *BroadcastMessage) {
	b.seen[msgID{m.Origin, m.ID}] = ctx.Now()
	ctx.Notify(&DeliverReply{Node: ctx.Node(), Origin: m.Origin, ID: m.ID, Payload: m.Payload})
}

func (b *Broadcast) forward(ctx *actors.Context, m *BroadcastMessage, from actors.NodeName) error {
	for _, n := range b.neighbours {
		if n == from {
			continue
		}
		if err := ctx.SendReliable(n, m); err != nil {
			ctx.Log().Warn().Err(err).Str("neighbour", string(n)).Msg("cannot forward a broadcast")
		}
	}
	return nil
}

func (b *Broadcast) onGarbageCollect(ctx *actors.Context, _ GarbageCollectTimer) error {
	cutoff := ctx.Now().Add(-b.cfg.Retain)
	for id, at := range b.seen {
		if at.Before(cutoff) {
			delete(b.seen, id)
		}
	}
	return nil
}

func (b *Broadcast) addNeighbour(ctx *actors.Context, n actors.NodeName) {
	if n == ctx.Node() || slices.Contains(b.neighbours, n) {
		return
	}
	b.neighbours = append(b.neighbours, n)
	slices.Sort(b.neighbours)
}

func (b *Broadcast) removeNeighbour(n actors.NodeName) {
	b.neighbours = slices.DeleteFunc(b.neighbours, func(x actors.NodeName) bool { return x == n })
}

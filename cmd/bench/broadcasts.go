package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/examples/broadcast"
	"github.com/troupe-dev/troupe/examples/plumtree"
	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// The second part of bench channels: three protocols that broadcast,
// each on its own channel, driven alike on loopback.

// Rumor is the gossip contender's message.
type Rumor struct{ Payload []byte }

var _ = messages.Register[Rumor]("bench.Rumor")

const rumorName actors.ProtocolName = "rumor"

type rumorSend struct{ payload []byte }

// rumorProtocol broadcasts on the gossip channel (ctx.Broadcast) and
// counts what it receives.
type rumorProtocol struct{ delivered *atomic.Int64 }

func (p *rumorProtocol) Name() actors.ProtocolName { return rumorName }

func (p *rumorProtocol) Init(ctx *actors.Context) error {
	actors.OnTell(ctx, func(ctx *actors.Context, s *rumorSend) error { return ctx.Broadcast(&Rumor{Payload: s.payload}) })
	actors.OnMessage(ctx, func(*actors.Context, actors.NodeName, *Rumor) error { p.delivered.Add(1); return nil })
	return nil
}

// contender is one broadcasting protocol: how to start it, how to ask a
// node for a broadcast, and the count of deliveries on nodes other than
// the origin.
type contender struct {
	name      actors.ProtocolName
	channels  string
	start     func(c *cluster.Cluster) error
	send      func(n *actors.Node, payload []byte) error
	delivered *atomic.Int64
	stall     time.Duration // no delivery for this long: what is out is lost
}

type broadcastRow struct {
	name                   actors.ProtocolName
	channels               string
	broadcasts, deliveries int64
	perS, lossPct          float64
	msgsPer, bytesPer      float64
}

func contenders(names []actors.NodeName) []*contender {
	flood, tree, rumor := &atomic.Int64{}, &atomic.Int64{}, &atomic.Int64{}
	return []*contender{
		{name: broadcast.Name, channels: "stream (reliable)", delivered: flood, stall: 200 * time.Millisecond,
			start: func(c *cluster.Cluster) error {
				cfg := broadcast.DefaultConfig()
				cfg.Neighbours = names
				if err := c.Start(broadcast.New(cfg)); err != nil {
					return err
				}
				return observeAll(c, func(r *broadcast.DeliverReply) {
					if r.Node != r.Origin {
						flood.Add(1)
					}
				})
			},
			send: func(n *actors.Node, payload []byte) error {
				_, err := actors.Call(context.Background(), n, broadcast.Name, &broadcast.BroadcastRequest{Payload: payload})
				return err
			}},
		{name: plumtree.Name, channels: "datagram", delivered: tree, stall: time.Second,
			start: func(c *cluster.Cluster) error {
				if err := c.Start(plumtree.New(plumtree.DefaultConfig())); err != nil {
					return err
				}
				return observeAll(c, func(d *plumtree.Delivered) {
					if d.Node != d.ID.Origin {
						tree.Add(1)
					}
				})
			},
			send: func(n *actors.Node, payload []byte) error {
				_, err := actors.Call(context.Background(), n, plumtree.Name, &plumtree.BroadcastRequest{Payload: payload})
				return err
			}},
		{name: rumorName, channels: "gossip", delivered: rumor, stall: time.Second,
			start: func(c *cluster.Cluster) error {
				return c.Start(func() actors.Protocol { return &rumorProtocol{delivered: rumor} })
			},
			send: func(n *actors.Node, payload []byte) error { return n.Tell(rumorName, &rumorSend{payload: payload}) }},
	}
}

func observeAll[T any](c *cluster.Cluster, fn func(*T)) error {
	for _, n := range c.Nodes() {
		if _, err := actors.Observe(n, fn); err != nil {
			return err
		}
	}
	return nil
}

// runBroadcasts starts --broadcast-nodes nodes on loopback with membership
// and drives each contender in turn for --duration: broadcasts of 64
// bytes from each node in turn, at most --broadcast-window of them not yet
// delivered everywhere.
func (b *channelsBench) runBroadcasts() ([]broadcastRow, error) {
	n := b.broadcastNodes
	c, err := cluster.Local(n, cluster.Remote(), cluster.Logger(zerolog.Nop()),
		cluster.Membership(membership.Config{Preset: membership.PresetLocal}))
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	if err := waitUntil(30*time.Second, func() bool {
		for _, m := range c.Members() {
			if len(m.View().LiveNames()) != n {
				return false
			}
		}
		return true
	}); err != nil {
		return nil, fmt.Errorf("the %d nodes did not all see each other: %w", n, err)
	}
	var rows []broadcastRow
	for _, k := range contenders(c.Names()) {
		if err := k.start(c); err != nil {
			return nil, fmt.Errorf("starting %s: %w", k.name, err)
		}
		row, err := b.drive(c, k)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k.name, err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (b *channelsBench) drive(c *cluster.Cluster, k *contender) (broadcastRow, error) {
	nodes := c.Nodes()
	others := int64(len(nodes) - 1)
	window := int64(b.broadcastWindow) * others
	payload := make([]byte, 64)
	var issued, lost int64
	lastSeen, stallFrom := int64(0), time.Time{}
	start := time.Now()
	for time.Since(start) < b.duration {
		delivered := k.delivered.Load()
		if delivered != lastSeen {
			lastSeen, stallFrom = delivered, time.Time{}
		}
		if outstanding := issued*others - delivered - lost; outstanding >= window {
			if stallFrom.IsZero() {
				stallFrom = time.Now()
			} else if time.Since(stallFrom) > k.stall {
				lost += outstanding
				stallFrom = time.Time{}
			}
			time.Sleep(200 * time.Microsecond) // a load generator's pacing, not a synchronisation
			continue
		}
		if err := k.send(nodes[issued%int64(len(nodes))], payload); err != nil {
			return broadcastRow{}, err
		}
		issued++
	}
	elapsed := time.Since(start)
	waitQuiet(k.delivered)
	deliveries := k.delivered.Load()
	var msgs, bytes int64
	for _, ch := range transport.Channels {
		m, b := onTheWire(c, k.name, ch)
		msgs, bytes = msgs+m, bytes+b
	}
	row := broadcastRow{name: k.name, channels: k.channels, broadcasts: issued, deliveries: deliveries,
		perS: float64(deliveries) / elapsed.Seconds()}
	if want := issued * others; want > 0 {
		row.lossPct = 100 * float64(want-deliveries) / float64(want)
	}
	if deliveries > 0 {
		row.msgsPer, row.bytesPer = float64(msgs)/float64(deliveries), float64(bytes)/float64(deliveries)
	}
	return row, nil
}

func (b *channelsBench) printBroadcasts(rows []broadcastRow) {
	fmt.Fprintf(b.out, "\nbroadcast protocols: %d nodes on loopback, 64-byte payloads, %v each, at most %d broadcasts undelivered\n",
		b.broadcastNodes, b.duration, b.broadcastWindow)
	tw := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "protocol\tchannel\tbroadcasts\tdeliveries\tdeliveries/s\tlost %\tmsgs/delivery\tbytes/delivery\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f\t%.1f\t%.2f\t%.0f\t\n", r.name, r.channels, r.broadcasts, r.deliveries, r.perS, r.lossPct, r.msgsPer, r.bytesPer)
	}
	_ = tw.Flush()
}

package main

import (
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/examples/broadcast"
	"github.com/troupe-dev/troupe/examples/plumtree"
	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/messages"
)

type channelsBench struct {
	nodes           int
	sizes           []int
	duration        time.Duration
	window          int
	broadcastNodes  int
	broadcastWindow int
	out             io.Writer
}

func channelsCmd() *cobra.Command {
	b := &channelsBench{}
	cmd := &cobra.Command{
		Use:   "channels",
		Short: "Throughput and bytes per delivered message of the stream, datagram and gossip channels, on loopback",
		Long: `Starts --nodes nodes in this process on loopback gRPC with SWIM membership
(the local preset, which carries datagrams and gossip) and a load protocol
on each. For each channel and message size (--sizes, bytes of payload) in
turn, node-1 sends for --duration, keeping at most --window messages
undelivered (when nothing arrives for 50 ms, a second for gossip, what is
out counts as lost and frees its place):
  stream    ctx.SendOn(actors.Stream, node-2, m): gRPC, batched per handler run;
  datagram  ctx.SendOn(actors.Datagram, node-2, m): one UDP packet each, through
            memberlist (encrypted when gossip keys are set; not here);
  gossip    ctx.Broadcast(m): piggybacked on SWIM's gossip, to every other node.
Per row: messages delivered per second (a gossip broadcast delivered to
N-1 nodes counts N-1), the share lost, and the bytes this protocol put on
the wire per delivered message, from its Stats by channel (stream: the
envelopes' bytes, gRPC's framing left out; datagram and gossip: the packets'
bytes before memberlist's own per-packet header, every relay of a gossip
broadcast included), then the ratio to the stream's throughput.

Then --broadcast-nodes nodes on loopback run, in turn, three protocols
that broadcast: flooding (examples/broadcast: SendReliable to every node,
on the stream), Plumtree (examples/plumtree: datagrams) and a rumor
(ctx.Broadcast: gossip). Each broadcasts 64 bytes from every node in turn
for --duration, keeping at most --broadcast-window broadcasts not yet
delivered everywhere; per protocol: deliveries per second (a delivery is
one node other than the origin handing a broadcast to the application),
the share lost, and messages and bytes on the wire per delivery, from the
protocol's Stats by channel.

The last line is the contract, for the smallest size:
stream_msgs_per_s=<a> datagram_msgs_per_s=<b> gossip_msgs_per_s=<c> stream_bytes_per_msg=<d> datagram_bytes_per_msg=<e> gossip_bytes_per_msg=<f> flooding_bytes_per_delivery=<g> plumtree_bytes_per_delivery=<h> rumor_bytes_per_delivery=<i>`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b.out = cmd.OutOrStdout()
			return b.run()
		},
	}
	f := cmd.Flags()
	f.IntVar(&b.nodes, "nodes", 3, "nodes in the cluster (2 to 50)")
	f.IntSliceVar(&b.sizes, "sizes", []int{64, 400}, "payload sizes in bytes (1 to 400: a gossip broadcast carries at most 512 bytes of envelope)")
	f.DurationVar(&b.duration, "duration", 2*time.Second, "how long node-1 sends, per channel and size")
	f.IntVar(&b.window, "window", 256, "messages node-1 keeps undelivered at most")
	f.IntVar(&b.broadcastNodes, "broadcast-nodes", 8, "nodes of the broadcast protocols' cluster (3 to 50)")
	f.IntVar(&b.broadcastWindow, "broadcast-window", 32, "broadcasts not yet delivered everywhere at most")
	return cmd
}

// Load is the benchmark's message: a sequence number and a payload.
type Load struct {
	Round   uint32 // late arrivals of an earlier row are not counted
	Seq     uint64
	Payload []byte
}

var _ = messages.Register[Load]("bench.Load")

const loadName actors.ProtocolName = "channel-load"

// loadRun asks node-1's load protocol to send on ch for d.
type loadRun struct {
	round   uint32
	ch      actors.Channel
	to      actors.NodeName
	size    int
	until   time.Time
	expect  int64 // deliveries per message: 1, or N-1 for gossip
	counter *atomic.Int64
	sent    *atomic.Int64
	done    chan struct{}
}

type loadTick struct{}

// roundCounter counts the deliveries of one row.
type roundCounter struct {
	round uint32
	n     *atomic.Int64
}

// loadProtocol sends on node-1 and counts what arrives everywhere into
// the shared counter of the running row.
type loadProtocol struct {
	delivered *atomic.Pointer[roundCounter]
	window    int
	run       *loadRun
	seq       uint64
	lastSeen  int64
	stallFrom time.Time
	lost      int64
}

func (p *loadProtocol) Name() actors.ProtocolName { return loadName }

func (p *loadProtocol) Init(ctx *actors.Context) error {
	actors.OnMessage(ctx, func(_ *actors.Context, _ actors.NodeName, m *Load) error {
		if c := p.delivered.Load(); c != nil && c.round == m.Round {
			c.n.Add(1)
		}
		return nil
	})
	actors.OnTell(ctx, func(ctx *actors.Context, r *loadRun) error {
		p.run, p.seq, p.lastSeen, p.lost, p.stallFrom = r, 0, 0, 0, time.Time{}
		p.send(ctx)
		return nil
	})
	actors.OnTimer(ctx, func(ctx *actors.Context, _ loadTick) error { p.send(ctx); return nil })
	return nil
}

// send tops the window up, then looks again in a millisecond.
func (p *loadProtocol) send(ctx *actors.Context) {
	r := p.run
	if r == nil {
		return
	}
	now := ctx.Now()
	if now.After(r.until) {
		p.run = nil
		close(r.done)
		return
	}
	delivered := r.counter.Load()
	if delivered != p.lastSeen {
		p.lastSeen, p.stallFrom = delivered, time.Time{}
	}
	outstanding := int64(p.seq)*r.expect - delivered - p.lost
	if outstanding >= int64(p.window)*r.expect {
		// Nothing arrives: what is out is lost (datagrams, or broadcasts
		// pruned from a full queue), and frees its place after 50 ms (a
		// second for gossip, which takes a few gossip intervals).
		stall := 50 * time.Millisecond
		if r.ch == actors.Gossip {
			stall = time.Second
		}
		if p.stallFrom.IsZero() {
			p.stallFrom = now
		} else if now.Sub(p.stallFrom) > stall {
			p.lost += outstanding
			p.stallFrom = time.Time{}
		}
	}
	for outstanding < int64(p.window)*r.expect {
		p.seq++
		m := &Load{Round: r.round, Seq: p.seq, Payload: make([]byte, r.size)}
		var err error
		if r.ch == actors.Gossip {
			err = ctx.Broadcast(m)
		} else {
			err = ctx.SendOn(r.ch, r.to, m)
		}
		if err != nil {
			p.seq--
			break
		}
		r.sent.Add(1)
		outstanding += r.expect
	}
	ctx.After(time.Millisecond, loadTick{})
}

type channelRow struct {
	ch                actors.Channel
	size              int
	sent, delivered   int64
	expect            int64
	msgsPerS, lossPct float64
	bytesPerMsg       float64
}

func (b *channelsBench) run() error {
	if b.nodes < 2 || b.nodes > 50 {
		return fmt.Errorf("--nodes %d: use 2 to 50", b.nodes)
	}
	if len(b.sizes) == 0 {
		return fmt.Errorf("--sizes is empty; give payload sizes such as 64,400")
	}
	for _, s := range b.sizes {
		if s < 1 || s > 400 {
			return fmt.Errorf("--sizes %d: a payload size must be from 1 to 400 bytes (the gossip channel carries at most 512 bytes of envelope)", s)
		}
	}
	if b.duration < 100*time.Millisecond || b.duration > 10*time.Minute {
		return fmt.Errorf("--duration %v: use 100ms to 10m", b.duration)
	}
	if b.window < 1 || b.window > 65536 {
		return fmt.Errorf("--window %d: use 1 to 65536", b.window)
	}
	if b.broadcastNodes < 3 || b.broadcastNodes > 50 {
		return fmt.Errorf("--broadcast-nodes %d: use 3 to 50", b.broadcastNodes)
	}
	if b.broadcastWindow < 1 || b.broadcastWindow > 1024 {
		return fmt.Errorf("--broadcast-window %d: use 1 to 1024", b.broadcastWindow)
	}
	c, err := cluster.Local(b.nodes, cluster.Remote(), cluster.Logger(zerolog.Nop()),
		cluster.Membership(membership.Config{Preset: membership.PresetLocal}))
	if err != nil {
		return err
	}
	defer c.Stop()
	if err := waitUntil(30*time.Second, func() bool {
		for _, m := range c.Members() {
			if len(m.View().LiveNames()) != b.nodes {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("the %d nodes did not all see each other: %w", b.nodes, err)
	}
	var current atomic.Pointer[roundCounter]
	if err := c.Start(func() actors.Protocol { return &loadProtocol{delivered: &current, window: b.window} }); err != nil {
		return err
	}
	names := c.Names()
	sender := c.Node(names[0])
	var rows []channelRow
	for _, size := range b.sizes {
		for _, ch := range []actors.Channel{actors.Stream, actors.Datagram, actors.Gossip} {
			expect := int64(1)
			if ch == actors.Gossip {
				expect = int64(b.nodes - 1)
			}
			before := wireOf(c, ch)
			var counter, sent atomic.Int64
			current.Store(&roundCounter{round: uint32(len(rows) + 1), n: &counter})
			r := &loadRun{round: uint32(len(rows) + 1), ch: ch, to: names[1], size: size, expect: expect, counter: &counter, sent: &sent, done: make(chan struct{})}
			start := time.Now()
			r.until = start.Add(b.duration)
			if err := sender.Tell(loadName, r); err != nil {
				return err
			}
			<-r.done
			elapsed := time.Since(start)
			waitQuiet(&counter)
			current.Store(nil)
			delivered := counter.Load()
			wire := wireOf(c, ch) - before
			row := channelRow{ch: ch, size: size, sent: sent.Load(), delivered: delivered, expect: expect,
				msgsPerS: float64(delivered) / elapsed.Seconds()}
			if want := sent.Load() * expect; want > 0 {
				row.lossPct = 100 * float64(want-delivered) / float64(want)
			}
			if delivered > 0 {
				row.bytesPerMsg = float64(wire) / float64(delivered)
			}
			rows = append(rows, row)
		}
	}
	if err := c.Stop(); err != nil {
		return err
	}
	brows, err := b.runBroadcasts()
	if err != nil {
		return err
	}
	b.print(rows, brows)
	return nil
}

// wireOf is what the load protocol put on the wire on ch so far, summed
// over the nodes: envelope bytes on the stream, packet bytes on datagrams
// and gossip.
func wireOf(c *cluster.Cluster, ch actors.Channel) int64 {
	_, bytes := onTheWire(c, loadName, ch)
	return bytes
}

// onTheWire is what protocol put on the wire on ch so far, summed over
// the nodes: envelopes and their bytes on the stream, packets and their
// bytes on datagrams and gossip.
func onTheWire(c *cluster.Cluster, protocol actors.ProtocolName, ch actors.Channel) (msgs, bytes int64) {
	for _, n := range c.Nodes() {
		s := n.Stats().Protocols[protocol].Channels[ch]
		if ch == actors.Stream {
			msgs, bytes = msgs+s.Sent, bytes+s.BytesOut
		} else {
			msgs, bytes = msgs+s.Packets, bytes+s.PacketBytes
		}
	}
	return msgs, bytes
}

// waitQuiet waits until the counter stops moving for 300 ms, at most 5 s:
// what is still on its way arrives, or is lost (gossip: within a few
// gossip intervals).
func waitQuiet(counter *atomic.Int64) {
	for last, waited := counter.Load(), time.Duration(0); waited < 5*time.Second; waited += 300 * time.Millisecond {
		time.Sleep(300 * time.Millisecond)
		if now := counter.Load(); now == last {
			return
		} else {
			last = now
		}
	}
}

func (b *channelsBench) print(rows []channelRow, brows []broadcastRow) {
	fmt.Fprintf(b.out, "%d nodes on loopback, protocol %s, %v per row, window %d\n", b.nodes, loadName, b.duration, b.window)
	tw := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "channel\tpayload B\tsent\tdelivered\tmsgs/s\tlost %\tbytes/msg\tvs stream\t")
	streamRate := map[int]float64{}
	for _, r := range rows {
		if r.ch == actors.Stream {
			streamRate[r.size] = r.msgsPerS
		}
		ratio := 0.0
		if s := streamRate[r.size]; s > 0 {
			ratio = r.msgsPerS / s
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%.1f\t%.0f\t%.3f×\t\n", r.ch, r.size, r.sent*r.expect, r.delivered, r.msgsPerS, r.lossPct, r.bytesPerMsg, ratio)
	}
	_ = tw.Flush()
	b.printBroadcasts(brows)
	smallest := slices.Min(b.sizes)
	fig := map[actors.Channel]channelRow{}
	for _, r := range rows {
		if r.size == smallest {
			fig[r.ch] = r
		}
	}
	per := map[actors.ProtocolName]broadcastRow{}
	for _, r := range brows {
		per[r.name] = r
	}
	fmt.Fprintf(b.out, "stream_msgs_per_s=%.0f datagram_msgs_per_s=%.0f gossip_msgs_per_s=%.0f stream_bytes_per_msg=%.0f datagram_bytes_per_msg=%.0f gossip_bytes_per_msg=%.0f flooding_bytes_per_delivery=%.0f plumtree_bytes_per_delivery=%.0f rumor_bytes_per_delivery=%.0f\n",
		fig[actors.Stream].msgsPerS, fig[actors.Datagram].msgsPerS, fig[actors.Gossip].msgsPerS,
		fig[actors.Stream].bytesPerMsg, fig[actors.Datagram].bytesPerMsg, fig[actors.Gossip].bytesPerMsg,
		per[broadcast.Name].bytesPer, per[plumtree.Name].bytesPer, per[rumorName].bytesPer)
}

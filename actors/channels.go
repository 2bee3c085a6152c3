package actors

import (
	"fmt"
	"sync/atomic"

	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// Channel is one way a protocol's messages travel between nodes: [Stream]
// (the Network, the default), [Datagram] or [Gossip] (the node's packet
// service, [Node.SetPackets]). See "Channels" in the package documentation.
type Channel = transport.Channel

const (
	// Stream is the node's Network: ordered per sender, batched, up to
	// transport.MaxEnvelopeSize per message; [Context.SendReliable] adds
	// retransmission on top of it.
	Stream = transport.Stream
	// Datagram is one best-effort packet per message, which may be lost,
	// duplicated or reordered, of at most the packet service's datagram
	// limit.
	Datagram = transport.Datagram
	// Gossip is epidemic broadcast to every member ([Context.Broadcast]),
	// of at most the packet service's broadcast limit.
	Gossip = transport.Gossip
)

// numChannels is how many channels there are: the length of the per
// channel counters.
const numChannels = int(Gossip) + 1

// ChannelStats counts one protocol's traffic on one channel.
type ChannelStats struct {
	// Sent and BytesOut count the messages the protocol sent on the
	// channel, with their encoded envelope bytes. On the stream that is
	// every envelope handed to the Network, retransmissions and
	// acknowledgements of SendReliable included (as in Types); a
	// broadcast counts once, however many members it reaches.
	Sent, BytesOut int64
	// Received and BytesIn count the messages that arrived on the channel
	// and were handed to the protocol's handlers, with their bytes.
	Received, BytesIn int64
	// Packets and PacketBytes count what the packet service put on the
	// wire for the protocol (PacketHandler.Transmitted): one per datagram,
	// and for gossip each transmission of a broadcast, this node's own or
	// one it relays. Zero for the stream.
	Packets, PacketBytes int64
	// Dropped counts the sends on the channel that failed (no packet
	// service, over its limit, refused by it) and the broadcasts the
	// packet service pruned before their last transmission
	// (PacketHandler.Dropped).
	Dropped int64
}

// channelMetrics are the counters of one channel of one protocol.
type channelMetrics struct {
	sent, bytesOut, received, bytesIn, packets, packetBytes, dropped atomic.Int64
}

func (m *channelMetrics) snapshot() ChannelStats {
	return ChannelStats{
		Sent: m.sent.Load(), BytesOut: m.bytesOut.Load(),
		Received: m.received.Load(), BytesIn: m.bytesIn.Load(),
		Packets: m.packets.Load(), PacketBytes: m.packetBytes.Load(),
		Dropped: m.dropped.Load(),
	}
}

// validChannel checks ch for a send by protocol p, naming what to use.
func validChannel(p ProtocolName, ch Channel, op string) error {
	switch ch {
	case Stream, Datagram:
		return nil
	case Gossip:
		return fmt.Errorf("%w: protocol %s: %s on the gossip channel: gossip reaches every member: use Broadcast", ErrWrongChannel, p, op)
	}
	return fmt.Errorf("%w: protocol %s: %s on unknown channel %v; valid: stream, datagram (gossip through Broadcast)", ErrWrongChannel, p, op, ch)
}

// UseChannel sets the channel [Context.Send] uses from now on: [Stream]
// (the default) or [Datagram]. It holds for this incarnation: call it in
// Init, which every incarnation runs. Gossip is refused (it reaches every
// member: use [Context.Broadcast]), and so is an unknown channel.
// SendReliable always uses the stream.
func (c *Context) UseChannel(ch Channel) error {
	if c.dead("UseChannel") {
		return c.errDead("UseChannel")
	}
	if err := validChannel(c.h.name, ch, "UseChannel"); err != nil {
		return err
	}
	c.channel = ch
	return nil
}

// Channel is the channel [Context.Send] uses ([Context.UseChannel]).
func (c *Context) Channel() Channel { return c.channel }

// Arrived is the channel the message being handled came by, in an
// [OnMessage] handler; elsewhere it is the channel of the last message
// from the network the protocol handled.
func (c *Context) Arrived() Channel { return c.h.arrived }

// SendOn sends m to this protocol on node `to` on channel ch: [Stream] as
// [Context.Send] on the stream, [Datagram] in one best-effort packet of
// the node's packet service (to this node, straight to the protocol's
// mailbox). Gossip is refused: use [Context.Broadcast]. A datagram fails
// with transport.ErrNoPackets on a node without a packet service, with
// transport.ErrTooLarge over its datagram limit, and with the service's
// error (such as transport.ErrUnknownNode for a node that is not a live
// member); any m Send refuses, it refuses.
func (c *Context) SendOn(ch Channel, to NodeName, m any) error {
	if c.dead("SendOn") {
		return c.errDead("SendOn")
	}
	switch ch {
	case Stream:
		return c.sendStream(to, m)
	case Datagram:
		return c.sendPacket(Datagram, to, m)
	}
	return validChannel(c.h.name, ch, "SendOn")
}

// Broadcast hands m to the node's packet service for epidemic broadcast
// to this protocol on every other member: each member's handler gets it
// once, with high probability, within O(log N) gossip rounds; this node's
// does not. It fails as a datagram does ([Context.SendOn]), against the
// broadcast limit. Nil means queued, not delivered.
func (c *Context) Broadcast(m any) error {
	if c.dead("Broadcast") {
		return c.errDead("Broadcast")
	}
	return c.sendPacket(Gossip, "", m)
}

// sendPacket sends m on a channel of the packet service: a datagram to
// node `to`, or a broadcast.
func (c *Context) sendPacket(ch Channel, to NodeName, m any) error {
	h := c.h
	env := &messages.Envelope{From: string(h.node.name), To: string(to), Protocol: string(h.name)}
	if err := transport.MarshalPayload(env, m); err != nil {
		return fmt.Errorf("protocol %s sending %s on %v: %w", h.name, typeName(m), ch, err)
	}
	cm := &h.metrics.channels[ch]
	fail := func(err error) error {
		cm.dropped.Add(1)
		return fmt.Errorf("protocol %s sending %s on %v: %w", h.name, env.Type, ch, err)
	}
	if ch == Datagram {
		if err := transport.ValidateName("receiver node", to); err != nil {
			return fail(fmt.Errorf("%w: %v", transport.ErrUnknownNode, err))
		}
	}
	b, err := transport.Encode(env)
	if err != nil {
		return fail(err)
	}
	if ch == Datagram && to == h.node.name { // to itself: no packet needed
		h.enqueue(&inbound{env: env, size: len(b), ch: Datagram})
	} else {
		p := h.node.packets.Load()
		if p == nil {
			return fail(transport.ErrNoPackets)
		}
		datagram, broadcast := (*p).Limits()
		limit := datagram
		if ch == Gossip {
			limit = broadcast
		}
		if len(b) > limit {
			return fail(fmt.Errorf("%w: envelope of %d bytes; the %v limit is %d", transport.ErrTooLarge, len(b), ch, limit))
		}
		if ch == Gossip {
			err = (*p).Broadcast(string(h.name), b)
		} else {
			err = (*p).SendDatagram(string(to), string(h.name), b)
		}
		if err != nil {
			return fail(err)
		}
	}
	k := h.statsOf(m)
	k.msgsOut.Add(1)
	k.bytesOut.Add(int64(len(b)))
	cm.sent.Add(1)
	cm.bytesOut.Add(int64(len(b)))
	return nil
}

// SetPackets installs p as the node's packet service, which carries the
// [Datagram] and [Gossip] channels (package membership calls it when it is
// attached), and makes the node p's handler (p.Handle): what arrives is
// checked as a message from the Network is, then handed to its protocol's
// mailbox; OnMessage handlers get it with from the sender's node. A later
// call replaces p; nil removes the service (sends on its channels then
// fail with transport.ErrNoPackets). Safe from any goroutine.
//
// An arriving envelope is refused, and counted in NodeStats.Rejected,
// unless it decodes and validates (transport.Validate), is best-effort
// data (no acknowledgement, no reliable sequence number), names another
// node as its sender, and names this node as its receiver for a datagram,
// no receiver (empty To) for a broadcast. One for a protocol the node does
// not run counts in NodeStats.UnknownProtocol.
func (n *Node) SetPackets(p transport.Packets) {
	if p == nil {
		n.packets.Store(nil)
		return
	}
	p.Handle(transport.PacketHandler{
		Receive:     n.receivePacket,
		Transmitted: n.transmitted,
		Dropped:     n.droppedPacket,
	})
	n.packets.Store(&p)
}

// kindRefusedPacket is the warning of a datagram or broadcast refused.
const kindRefusedPacket = "refusing a datagram or broadcast"

// receivePacket is the packet service's Receive: it checks b and hands it
// to its protocol. Runs on the service's goroutines.
func (n *Node) receivePacket(ch Channel, b []byte) {
	env, err := n.decodePacket(ch, b)
	if err != nil {
		n.rejected.Add(1)
		n.badInput.Warn(kindRefusedPacket).Str("channel", ch.String()).Err(err).Msg(kindRefusedPacket)
		return
	}
	h := n.inbox(ProtocolName(env.Protocol))
	if h == nil {
		n.unknownProtocol.Add(1)
		n.badInput.Warn(kindUnknownProtocol).Str("from", env.From).Str("protocol", env.Protocol).Str("type", env.Type).
			Str("channel", ch.String()).Msg(kindUnknownProtocol)
		return
	}
	h.enqueue(&inbound{env: env, size: len(b), ch: ch})
}

// decodePacket decodes and checks an envelope that came by ch.
func (n *Node) decodePacket(ch Channel, b []byte) (*messages.Envelope, error) {
	if ch != Datagram && ch != Gossip {
		return nil, fmt.Errorf("%w: a packet on channel %v; packets come by datagram or gossip", transport.ErrMalformed, ch)
	}
	env, err := transport.Unmarshal(b)
	if err != nil {
		return nil, err
	}
	switch {
	case ch == Datagram && env.To != string(n.name):
		return nil, fmt.Errorf("%w: a datagram for node %q arrived at node %s", transport.ErrMalformed, env.To, n.name)
	case ch == Gossip && env.To != "":
		return nil, fmt.Errorf("%w: a broadcast names receiver %q; a broadcast names none", transport.ErrMalformed, env.To)
	case env.From == string(n.name):
		return nil, fmt.Errorf("%w: a %v claims to come from this node (%s)", transport.ErrMalformed, ch, n.name)
	case env.Kind != messages.Envelope_KIND_DATA || env.Seq != 0 || env.Session != 0:
		return nil, fmt.Errorf("%w: a %v carries reliable-delivery fields (kind %v, session %d, seq %d); datagrams and broadcasts are best-effort data", transport.ErrMalformed, ch, env.Kind, env.Session, env.Seq)
	}
	env.To = string(n.name)
	if err := transport.Validate(env); err != nil {
		return nil, err
	}
	return env, nil
}

// transmitted is the packet service's Transmitted. The protocol is found
// as deliveries find it (inbox): a broadcast sent in the first Init is
// transmitted before Start publishes the protocol. Transmissions of
// protocols the node does not run (relayed gossip) are not counted.
func (n *Node) transmitted(ch Channel, protocol string, bytes int) {
	if h := n.inbox(ProtocolName(protocol)); h != nil && int(ch) < numChannels {
		m := &h.metrics.channels[ch]
		m.packets.Add(1)
		m.packetBytes.Add(int64(bytes))
	}
}

// droppedPacket is the packet service's Dropped.
func (n *Node) droppedPacket(ch Channel, protocol string) {
	if h := n.inbox(ProtocolName(protocol)); h != nil && int(ch) < numChannels {
		h.metrics.channels[ch].dropped.Add(1)
	}
}

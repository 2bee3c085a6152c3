package transport

import (
	"errors"
	"fmt"
)

// Channel is one way a protocol's messages travel between nodes. A node
// multiplexes its channels over two services: the [Network] (the stream)
// and a [Packets] service beside it (datagrams and gossip), which package
// membership provides over SWIM's UDP socket and gossip.
type Channel uint8

const (
	// Stream is the Network: ordered per sender and batched on the remote
	// network (gRPC), up to MaxEnvelopeSize per message. The default.
	Stream Channel = iota
	// Datagram is best effort and unordered: one UDP packet per message,
	// which may be lost, duplicated or reordered, of at most
	// [Packets.Limits]'s datagram size.
	Datagram
	// Gossip is epidemic broadcast piggybacked on SWIM's gossip: a message
	// reaches every live member with high probability in O(log N) gossip
	// rounds, each member handing it to its protocol once; at most
	// [Packets.Limits]'s broadcast size.
	Gossip
	numChannels
)

// Channels lists every channel, in order.
var Channels = []Channel{Stream, Datagram, Gossip}

var channelNames = [numChannels]string{"stream", "datagram", "gossip"}

// String is the channel's name as it appears in Stats, /metrics and the
// dashboard: "stream", "datagram" or "gossip".
func (c Channel) String() string {
	if c < numChannels {
		return channelNames[c]
	}
	return fmt.Sprintf("channel(%d)", uint8(c))
}

// ParseChannel is the channel named s (a String).
func ParseChannel(s string) (Channel, error) {
	for i, n := range channelNames {
		if n == s {
			return Channel(i), nil
		}
	}
	return 0, fmt.Errorf("transport: unknown channel %q; valid: stream, datagram, gossip", s)
}

// ErrNoPackets: a datagram or gossip send on a node that has no [Packets]
// service (one without membership).
var ErrNoPackets = errors.New("transport: no datagram or gossip channel on this node (membership provides them: membership.Attach)")

// Packets is a node's best-effort packet service beside its Network:
// datagrams to one node and epidemic broadcast to all. Package membership
// implements it over memberlist (its UDP socket, encrypted with the gossip
// keys, and its gossip); on the simulated network memberlist runs over the
// hub, so the hub's faults and counters apply to both channels.
// Implementations are safe for concurrent use.
type Packets interface {
	// SendDatagram sends b, an encoded envelope of protocol, to node `to`
	// in one packet, best effort. It fails with ErrUnknownNode for a node
	// that is not a live member, ErrTooLarge over the datagram limit,
	// ErrClosed after shutdown; nil means sent, not delivered.
	SendDatagram(to, protocol string, b []byte) error
	// Broadcast queues b, an encoded envelope of protocol, for epidemic
	// broadcast to every member (this node excluded). It fails with
	// ErrTooLarge over the broadcast limit and ErrClosed after shutdown.
	Broadcast(protocol string, b []byte) error
	// Limits are the largest encoded envelopes SendDatagram and Broadcast
	// take, in bytes.
	Limits() (datagram, broadcast int)
	// Handle sets who is told of the service's traffic (replacing any
	// earlier handler). Same threading contract as [Deliver].
	Handle(h PacketHandler)
}

// PacketHandler is told of a [Packets] service's traffic.
type PacketHandler struct {
	// Receive is given each datagram and each gossip broadcast arriving
	// at this node (a broadcast once, not per copy), with the channel it
	// came by. b is the encoded envelope, not yet validated, and belongs
	// to the callee.
	Receive func(ch Channel, b []byte)
	// Transmitted is told of each packet this node puts on the wire for a
	// protocol, with its bytes: a datagram, or one transmission of a
	// broadcast (its own or one it relays; each is sent several times).
	Transmitted func(ch Channel, protocol string, bytes int)
	// Dropped is told of each broadcast of protocol the service dropped:
	// pruned from a full queue before its last transmission.
	Dropped func(ch Channel, protocol string)
}

// MarshalText encodes c as its name, so that a map keyed by Channel reads
// "stream", "datagram" and "gossip" in JSON.
func (c Channel) MarshalText() ([]byte, error) {
	if c >= numChannels {
		return nil, fmt.Errorf("transport: unknown channel %d; valid: stream (0), datagram (1), gossip (2)", uint8(c))
	}
	return []byte(channelNames[c]), nil
}

// UnmarshalText decodes a channel's name (as [ParseChannel]).
func (c *Channel) UnmarshalText(b []byte) error {
	ch, err := ParseChannel(string(b))
	if err != nil {
		return err
	}
	*c = ch
	return nil
}

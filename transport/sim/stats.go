package sim

import (
	"cmp"
	"slices"
)

// Counters count what happened to the messages of one (link, protocol,
// message type). Bytes are encoded envelope sizes; for memberlist rows
// (Protocol [MemberlistProtocol]) they are packet sizes, or for streams the
// bytes of each Write, which counts as one message.
type Counters struct {
	Sent       int64 // handed to the hub by the sender
	SentBytes  int64
	Delivered  int64 // handed to the receiver (duplicates included)
	DelivBytes int64
	Lost       int64 // dropped by the Loss fault
	Blocked    int64 // dropped by a partition or a one-way block
	Down       int64 // dropped because the receiver was detached
	Duplicated int64 // extra copies made by the Duplicate fault
	Reordered  int64 // held back by the Reorder fault
	// Overflow counts memberlist packets dropped because the receiver's
	// packet buffer was full (a UDP socket buffer overflowing).
	Overflow int64
}

func (c *Counters) add(o Counters) {
	c.Sent += o.Sent
	c.SentBytes += o.SentBytes
	c.Delivered += o.Delivered
	c.DelivBytes += o.DelivBytes
	c.Lost += o.Lost
	c.Blocked += o.Blocked
	c.Down += o.Down
	c.Duplicated += o.Duplicated
	c.Reordered += o.Reordered
	c.Overflow += o.Overflow
}

// Key names one row of [Stats].
type Key struct {
	From, To string // the link's direction
	Protocol string
	Type     string // full protobuf name of the payload ("ack" for acknowledgements; [PacketType] or [StreamType] for memberlist)
}

// Row is one line of the hub's accounting.
type Row struct {
	Key
	Counters
}

// Stats is a snapshot of the hub's accounting, one row per (link, protocol,
// message type), sorted.
type Stats []Row

// Total sums the rows that match keep (all rows when keep is nil).
func (s Stats) Total(keep func(Key) bool) Counters {
	var t Counters
	for _, r := range s {
		if keep == nil || keep(r.Key) {
			t.add(r.Counters)
		}
	}
	return t
}

// Protocol keeps the rows of one protocol, for [Stats.Total].
func Protocol(name string) func(Key) bool {
	return func(k Key) bool { return k.Protocol == name }
}

// From keeps the rows sent by one node, for [Stats.Total].
func From(node string) func(Key) bool {
	return func(k Key) bool { return k.From == node }
}

func sortRows(s Stats) {
	slices.SortFunc(s, func(a, b Row) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To),
			cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Type, b.Type))
	})
}

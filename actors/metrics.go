package actors

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// latencyBuckets is the number of histogram buckets: bucket i counts
// durations below 2^(i+8) ns (256ns, 512ns, ... about 34s); the last one
// also takes anything longer.
const latencyBuckets = 28

// Latency summarises handler run times of one message type, over the runs
// that were timed (one in Config.LatencySampleEvery).
type Latency struct {
	Count   int64 // timed runs
	Sum     time.Duration
	Max     time.Duration
	Buckets [latencyBuckets]int64 // see BucketBound
}

// BucketBound is the upper bound of histogram bucket i of [Latency].
func BucketBound(i int) time.Duration { return time.Duration(1) << (i + 8) }

// Quantile estimates the q-quantile (0 < q <= 1) as the upper bound of the
// bucket it falls in, capped by Max.
func (l Latency) Quantile(q float64) time.Duration {
	if l.Count == 0 {
		return 0
	}
	rank := int64(q*float64(l.Count) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for i, c := range l.Buckets {
		if seen += c; seen >= rank {
			return min(BucketBound(i), l.Max)
		}
	}
	return l.Max
}

// Mean is the average handler time.
func (l Latency) Mean() time.Duration {
	if l.Count == 0 {
		return 0
	}
	return l.Sum / time.Duration(l.Count)
}

// TypeStats counts the traffic of one message type through one protocol.
// In is what the protocol received (network messages, notifications,
// requests, replies, timers); Out is what it sent. Bytes count encoded
// envelopes, so only network messages have them.
type TypeStats struct {
	MsgsIn, BytesIn   int64
	MsgsOut, BytesOut int64
	Latency           Latency // handler run time, for types it handles
}

// ProtocolStats describes one protocol of a node.
type ProtocolStats struct {
	Name         ProtocolName
	Restarts     int64 // supervised restarts so far
	Reconfigured int64 // run-time configurations accepted (Node.Reconfigure)
	Stopped      bool  // stopped for good (too many restarts, or Node.Stop)
	MailboxDepth int   // messages waiting in the mailbox now
	// Unhandled counts messages dropped: no handler, malformed, stale,
	// refused.
	Unhandled int64
	// Refused counts the messages from other nodes whose handler panicked
	// (also in Unhandled): the runtime dropped each and the protocol went
	// on, without a restart.
	Refused int64
	// Misused counts operations on a dead Context (one whose incarnation
	// ended): each failed or did nothing, and the first ones were logged.
	Misused int64
	// Timers counts the timer firings the protocol handled (OnTimer):
	// each is also in MsgsIn of its payload's type in Types. Subtract it
	// from Total().MsgsIn for the messages the protocol was sent.
	Timers  int64
	Streams StreamStats // Context.SendStream and OnStream
	Types   map[string]TypeStats
	// Channels counts the protocol's traffic by channel (in JSON keyed
	// "stream", "datagram", "gossip"), for the channels it used.
	Channels map[Channel]ChannelStats
}

// NodeStats is a snapshot of a node's counters, for tests, the HTTP API and
// telemetry.
type NodeStats struct {
	Node      NodeName
	Protocols map[ProtocolName]ProtocolStats
	// UnknownProtocol counts network messages, datagrams and broadcasts
	// for protocols the node does not run; Rejected counts envelopes the
	// network refused as malformed, and datagrams and broadcasts the node
	// refused (Node.SetPackets).
	UnknownProtocol, Rejected int64
}

// histogram is written by one protocol's actor and read by Stats. Its
// count is the sum of its buckets, which saves an atomic add per sample.
type histogram struct {
	sum, max atomic.Int64
	buckets  [latencyBuckets]atomic.Int64
}

func (h *histogram) observe(d time.Duration) {
	ns := int64(d)
	i := bits.Len64(uint64(ns) >> 8)
	if i >= latencyBuckets {
		i = latencyBuckets - 1
	}
	h.buckets[i].Add(1)
	h.sum.Add(ns)
	if ns > h.max.Load() { // only the protocol's actor writes
		h.max.Store(ns)
	}
}

func (h *histogram) snapshot() Latency {
	l := Latency{Sum: time.Duration(h.sum.Load()), Max: time.Duration(h.max.Load())}
	for i := range h.buckets {
		l.Buckets[i] = h.buckets[i].Load()
		l.Count += l.Buckets[i]
	}
	return l
}

type typeMetrics struct {
	msgsIn, bytesIn, msgsOut, bytesOut atomic.Int64
	latency                            histogram
}

type protocolMetrics struct {
	restarts     atomic.Int64
	reconfigured atomic.Int64
	stopped      atomic.Bool
	unhandled    atomic.Int64
	refused      atomic.Int64
	misused      atomic.Int64
	timers       atomic.Int64
	streams      streamMetrics
	types        sync.Map // type name → *typeMetrics
	channels     [numChannels]channelMetrics
}

func (m *protocolMetrics) typ(name string) *typeMetrics {
	if t, ok := m.types.Load(name); ok {
		return t.(*typeMetrics)
	}
	t, _ := m.types.LoadOrStore(name, &typeMetrics{})
	return t.(*typeMetrics)
}

func (m *protocolMetrics) snapshot(name ProtocolName, depth int) ProtocolStats {
	s := ProtocolStats{
		Name:         name,
		Restarts:     m.restarts.Load(),
		Reconfigured: m.reconfigured.Load(),
		Stopped:      m.stopped.Load(),
		MailboxDepth: depth,
		Unhandled:    m.unhandled.Load(),
		Refused:      m.refused.Load(),
		Misused:      m.misused.Load(),
		Timers:       m.timers.Load(),
		Streams:      m.streams.snapshot(),
		Types:        map[string]TypeStats{},
		Channels:     map[Channel]ChannelStats{},
	}
	for i := range m.channels {
		if cs := m.channels[i].snapshot(); cs != (ChannelStats{}) {
			s.Channels[Channel(i)] = cs
		}
	}
	m.types.Range(func(k, v any) bool {
		t := v.(*typeMetrics)
		s.Types[k.(string)] = TypeStats{
			MsgsIn: t.msgsIn.Load(), BytesIn: t.bytesIn.Load(),
			MsgsOut: t.msgsOut.Load(), BytesOut: t.bytesOut.Load(),
			Latency: t.latency.snapshot(),
		}
		return true
	})
	return s
}

// Network sums the counters of the types that crossed the network
// (including acknowledgements), leaving out local messages.
func (s ProtocolStats) Network() TypeStats {
	return s.sum(func(ts TypeStats) bool { return ts.BytesOut > 0 || ts.BytesIn > 0 })
}

// Total sums the counters of every type.
func (s ProtocolStats) Total() TypeStats {
	return s.sum(func(TypeStats) bool { return true })
}

func (s ProtocolStats) sum(keep func(TypeStats) bool) TypeStats {
	var t TypeStats
	for _, ts := range s.Types {
		if keep(ts) {
			t.MsgsIn += ts.MsgsIn
			t.BytesIn += ts.BytesIn
			t.MsgsOut += ts.MsgsOut
			t.BytesOut += ts.BytesOut
		}
	}
	return t
}

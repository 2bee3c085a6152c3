package telemetry

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/membership"
)

// NewRegistry returns a Prometheus registry holding node's runtime
// counters ([NewCollector]; none for a nil node, to register later) and
// the Go runtime's and the process's metrics, for GET /metrics. Each call
// makes a new registry: nothing is registered globally.
func NewRegistry(node *actors.Node) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if node != nil {
		reg.MustRegister(NewCollector(node))
	}
	return reg
}

// ProtoactorMeterProvider exports protoactor-go's own metrics into reg
// (names protoactor_*): it returns an OpenTelemetry meter provider to give
// the node (actors.Config.MetricProvider) and makes it OpenTelemetry's
// global one, because protoactor creates its instruments from the global
// provider. Being global, it suits a process that runs one node (node
// run); the nodes of one process would all report into the last registry
// given. The metrics are labelled by actor system address and Go actor
// type (every protocol is an actors.protocolHost), not by protocol: the
// per-protocol figures are Troupe's own (NewCollector).
func ProtoactorMeterProvider(reg prometheus.Registerer) (metric.MeterProvider, error) {
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutUnits())
	if err != nil {
		return nil, fmt.Errorf("telemetry: protoactor metrics exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	otel.SetMeterProvider(mp)
	return mp, nil
}

// NewCollector exports node's runtime counters (actors.Node.Stats) to
// Prometheus, read at each scrape:
//
//	troupe_messages_received_total{node,protocol,type}   counter
//	troupe_messages_sent_total{node,protocol,type}       counter
//	troupe_received_bytes_total{node,protocol,type}      counter (network messages only)
//	troupe_sent_bytes_total{node,protocol,type}          counter (network messages only)
//	troupe_handler_duration_seconds{node,protocol,type}  histogram of the timed handler runs
//	troupe_protocol_restarts_total{node,protocol}        counter
//	troupe_protocol_stopped{node,protocol}               gauge, 1 once stopped
//	troupe_mailbox_depth{node,protocol}                  gauge
//	troupe_unhandled_messages_total{node,protocol}       counter
//	troupe_refused_messages_total{node,protocol}         counter
//	troupe_unknown_protocol_messages_total{node}         counter
//	troupe_rejected_envelopes_total{node}                counter
//	troupe_raft_dropped_messages_total{node}             counter (nodes running consensus)
//	troupe_channel_messages_total{node,protocol,channel,direction}  counter
//	troupe_channel_bytes_total{node,protocol,channel,direction}     counter
//	troupe_channel_packets_total{node,protocol,channel}             counter
//	troupe_channel_packet_bytes_total{node,protocol,channel}        counter
//	troupe_channel_dropped_total{node,protocol,channel}             counter
//
// type is the message type: the protobuf full name of network messages,
// the Go type of local ones. troupe_refused_messages_total counts the
// messages from other nodes whose handler panicked (also in
// troupe_unhandled_messages_total). troupe_raft_dropped_messages_total
// counts the raft messages from other nodes that consensus's inbound
// checks refused (consensus.Status.Dropped; the raft protocol counts from
// each start, so a restart resets it, as Prometheus expects of a
// counter); it is asked of the raft protocol at each scrape and left out
// when the node runs none or it does not answer within raftStatusTimeout.
//
// The troupe_channel_* series count a protocol's traffic by channel
// (actors.ProtocolStats.Channels), for the channels it used: channel is
// "stream", "datagram" or "gossip", direction "out" (sent) or "in"
// (handed to the protocol). Messages and bytes are logical (a broadcast
// counts once); packets and packet bytes are what the packet service put
// on the wire for the protocol, each transmission of a broadcast
// (relays included); dropped counts failed sends and pruned broadcasts.
func NewCollector(node *actors.Node) prometheus.Collector {
	byType := []string{"node", "protocol", "type"}
	byProto := []string{"node", "protocol"}
	byNode := []string{"node"}
	byDir := []string{"node", "protocol", "channel", "direction"}
	byChannel := []string{"node", "protocol", "channel"}
	return &collector{
		node:        node,
		received:    prometheus.NewDesc("troupe_messages_received_total", "Messages a protocol received (network, notifications, requests, replies, timers), by message type.", byType, nil),
		sent:        prometheus.NewDesc("troupe_messages_sent_total", "Messages a protocol sent, by message type.", byType, nil),
		bytesIn:     prometheus.NewDesc("troupe_received_bytes_total", "Encoded envelope bytes a protocol received from the network, by message type.", byType, nil),
		bytesOut:    prometheus.NewDesc("troupe_sent_bytes_total", "Encoded envelope bytes a protocol sent to the network, by message type.", byType, nil),
		latency:     prometheus.NewDesc("troupe_handler_duration_seconds", "Handler run time, over the timed runs (one in actors.Config.LatencySampleEvery), by message type.", byType, nil),
		restarts:    prometheus.NewDesc("troupe_protocol_restarts_total", "Supervised restarts of a protocol.", byProto, nil),
		stopped:     prometheus.NewDesc("troupe_protocol_stopped", "1 once a protocol has stopped for good.", byProto, nil),
		depth:       prometheus.NewDesc("troupe_mailbox_depth", "Messages waiting in a protocol's mailbox.", byProto, nil),
		unhandled:   prometheus.NewDesc("troupe_unhandled_messages_total", "Messages a protocol dropped: no handler, malformed, stale, refused.", byProto, nil),
		refused:     prometheus.NewDesc("troupe_refused_messages_total", "Messages from other nodes a protocol refused because its handler panicked on them (also in troupe_unhandled_messages_total).", byProto, nil),
		raftDropped: prometheus.NewDesc("troupe_raft_dropped_messages_total", "Raft messages from other nodes that the raft protocol's inbound checks dropped, since it started.", byNode, nil),
		unknown:     prometheus.NewDesc("troupe_unknown_protocol_messages_total", "Network messages for protocols the node does not run.", byNode, nil),
		rejected:    prometheus.NewDesc("troupe_rejected_envelopes_total", "Envelopes the network refused as malformed.", byNode, nil),
		bucketsSec:  latencyBounds(),
		chMsgs:      prometheus.NewDesc("troupe_channel_messages_total", "Messages a protocol sent (out) or was handed (in) on a channel (stream, datagram, gossip); a broadcast counts once.", byDir, nil),
		chBytes:     prometheus.NewDesc("troupe_channel_bytes_total", "Encoded envelope bytes of troupe_channel_messages_total.", byDir, nil),
		chPackets:   prometheus.NewDesc("troupe_channel_packets_total", "Packets the packet service put on the wire for a protocol: datagrams, and each transmission of a broadcast (relays included).", byChannel, nil),
		chPktBytes:  prometheus.NewDesc("troupe_channel_packet_bytes_total", "Bytes of troupe_channel_packets_total.", byChannel, nil),
		chDropped:   prometheus.NewDesc("troupe_channel_dropped_total", "A protocol's sends on a channel that failed, and its broadcasts the packet service pruned before their last transmission.", byChannel, nil),
	}
}

type collector struct {
	node                                                   *actors.Node
	received, sent, bytesIn, bytesOut, latency             *prometheus.Desc
	restarts, stopped, depth, unhandled, unknown, rejected *prometheus.Desc
	refused, raftDropped                                   *prometheus.Desc
	chMsgs, chBytes, chPackets, chPktBytes, chDropped      *prometheus.Desc
	bucketsSec                                             []float64
}

// raftStatusTimeout bounds how long a scrape waits for the raft protocol's
// status.
const raftStatusTimeout = time.Second

// latencyBounds are the upper bounds of actors.Latency's buckets in
// seconds, but the last one, which also counts anything longer (+Inf).
func latencyBounds() []float64 {
	var b []float64
	for i := range len(actors.Latency{}.Buckets) - 1 {
		b = append(b, actors.BucketBound(i).Seconds())
	}
	return b
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.received, c.sent, c.bytesIn, c.bytesOut, c.latency,
		c.restarts, c.stopped, c.depth, c.unhandled, c.unknown, c.rejected, c.refused, c.raftDropped,
		c.chMsgs, c.chBytes, c.chPackets, c.chPktBytes, c.chDropped} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.node.Stats()
	node := string(s.Node)
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, protocol := range slices.Sorted(maps.Keys(s.Protocols)) {
		ps, name := s.Protocols[protocol], string(protocol)
		counter(c.restarts, ps.Restarts, node, name)
		stopped := 0.0
		if ps.Stopped {
			stopped = 1
		}
		gauge(c.stopped, stopped, node, name)
		gauge(c.depth, float64(ps.MailboxDepth), node, name)
		counter(c.unhandled, ps.Unhandled, node, name)
		counter(c.refused, ps.Refused, node, name)
		for _, typ := range slices.Sorted(maps.Keys(ps.Types)) {
			ts := ps.Types[typ]
			counter(c.received, ts.MsgsIn, node, name, typ)
			counter(c.sent, ts.MsgsOut, node, name, typ)
			if ts.BytesIn > 0 || ts.BytesOut > 0 {
				counter(c.bytesIn, ts.BytesIn, node, name, typ)
				counter(c.bytesOut, ts.BytesOut, node, name, typ)
			}
			if ts.Latency.Count > 0 {
				ch <- prometheus.MustNewConstHistogram(c.latency, uint64(ts.Latency.Count), ts.Latency.Sum.Seconds(),
					c.buckets(ts.Latency), node, name, typ)
			}
		}
		for _, channel := range slices.Sorted(maps.Keys(ps.Channels)) {
			cs, ch := ps.Channels[channel], channel.String()
			counter(c.chMsgs, cs.Sent, node, name, ch, "out")
			counter(c.chMsgs, cs.Received, node, name, ch, "in")
			counter(c.chBytes, cs.BytesOut, node, name, ch, "out")
			counter(c.chBytes, cs.BytesIn, node, name, ch, "in")
			if channel != actors.Stream {
				counter(c.chPackets, cs.Packets, node, name, ch)
				counter(c.chPktBytes, cs.PacketBytes, node, name, ch)
			}
			counter(c.chDropped, cs.Dropped, node, name, ch)
		}
	}
	counter(c.unknown, s.UnknownProtocol, node)
	counter(c.rejected, s.Rejected, node)
	if ps, ok := s.Protocols[consensus.Name]; ok && !ps.Stopped {
		ctx, cancel := context.WithTimeout(context.Background(), raftStatusTimeout)
		st, err := actors.Call(ctx, c.node, consensus.Name, consensus.StatusRequest{})
		cancel()
		if err == nil {
			ch <- prometheus.MustNewConstMetric(c.raftDropped, prometheus.CounterValue, float64(st.Dropped), node)
		}
	}
}

// NewMembershipCollector exports m's counters (membership.Stats) to
// Prometheus, read at each scrape:
//
//	troupe_membership_refused_members_total{node}   counter
//	troupe_membership_log_suppressed_total{node}    counter
//
// The first counts the members refused because their name is not a node
// name; the second the lines of memberlist's log held back by its rate
// limit (garbage packets, refused members), which the lines shown report.
func NewMembershipCollector(m *membership.Membership) prometheus.Collector {
	byNode := []string{"node"}
	return &membershipCollector{
		m:          m,
		refused:    prometheus.NewDesc("troupe_membership_refused_members_total", "Gossiped members refused because their name is not a node name.", byNode, nil),
		suppressed: prometheus.NewDesc("troupe_membership_log_suppressed_total", "Lines of memberlist's log held back by its rate limit.", byNode, nil),
	}
}

type membershipCollector struct {
	m                   *membership.Membership
	refused, suppressed *prometheus.Desc
}

func (c *membershipCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.refused
	ch <- c.suppressed
}

func (c *membershipCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.Stats()
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(s.RefusedMembers), string(c.m.Name()))
	ch <- prometheus.MustNewConstMetric(c.suppressed, prometheus.CounterValue, float64(s.LogSuppressed), string(c.m.Name()))
}

// buckets turns a Latency's per-bucket counts into Prometheus's cumulative
// ones.
func (c *collector) buckets(l actors.Latency) map[float64]uint64 {
	out := make(map[float64]uint64, len(c.bucketsSec))
	var cum uint64
	for i, bound := range c.bucketsSec {
		cum += uint64(l.Buckets[i])
		out[bound] = cum
	}
	return out
}

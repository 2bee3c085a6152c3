package membership

import (
	"github.com/prometheus/client_golang/prometheus"
)

// NewCollector exports m's SWIM figures (Stats) to Prometheus, read at
// each scrape, every series labelled with the node's name:
//
//	troupe_swim_probes_total{node}                   counter  probes this node sent
//	troupe_swim_probe_failures_total{node}           counter  ... that got no direct ack in the probe timeout
//	troupe_swim_suspicions_total{node,source}        counter  suspicions raised by this node's probes (source="probe") or learnt by gossip (source="gossip")
//	troupe_swim_refutations_total{node,by}           counter  suspicions refuted by members (by="member") or by this node of itself (by="self")
//	troupe_swim_failures_total{node}                 counter  members declared failed (confirmed dead)
//	troupe_swim_health_score{node}                   gauge    Lifeguard's awareness: 0 healthy, higher struggling (probes slowed that many times)
//	troupe_swim_incarnation{node}                    gauge    this node's incarnation
//	troupe_swim_members{node,state}                  gauge    members in this node's view per state (alive, suspect, failed, left; self included)
//	troupe_swim_gossip_bytes_total{node,direction}   counter  SWIM bytes sent and received (packets and streams)
//	troupe_swim_gossip_packets_total{node,direction} counter  SWIM packets sent and received
//	troupe_swim_datagrams_total{node,direction}      counter  datagrams (Packets.SendDatagram) sent and received
//	troupe_swim_broadcasts_total{node}               counter  broadcasts this node originated (Packets.Broadcast)
//	troupe_swim_broadcasts_delivered_total{node}     counter  others' broadcasts handed to the handler (once each)
//	troupe_swim_broadcasts_queued{node}              gauge    broadcast frames (own and relayed) in the gossip queue
//	troupe_swim_broadcast_transmissions_total{node}  counter  broadcast frames handed to gossip (own and relayed)
//	troupe_swim_broadcast_bytes_total{node}          counter  ... their bytes
//	troupe_swim_broadcast_relays_total{node}         counter  others' broadcasts queued for relaying
//	troupe_swim_broadcast_duplicates_total{node}     counter  broadcast copies not delivered: seen, too old, or this node's own
//	troupe_swim_broadcasts_dropped_total{node}       counter  frames pruned from a full queue before their last transmission
//	troupe_swim_user_packets_refused_total{node,reason} counter  datagram and broadcast packets refused: unknown_kind, truncated, oversized, bad_name, no_handler
//
// The node registers it on its registry (cmd/node does).
func NewCollector(m *Membership) prometheus.Collector {
	node := []string{"node"}
	return &collector{
		m:          m,
		probes:     prometheus.NewDesc("troupe_swim_probes_total", "SWIM probes this node sent.", node, nil),
		probeFails: prometheus.NewDesc("troupe_swim_probe_failures_total", "SWIM probes of this node that got no direct ack within the probe timeout.", node, nil),
		suspicions: prometheus.NewDesc("troupe_swim_suspicions_total", "Members this node came to suspect: source=probe its own probes, source=gossip learnt from others.", append(node, "source"), nil),
		refutations: prometheus.NewDesc("troupe_swim_refutations_total", "Suspicions refuted with a higher incarnation: by=member members this node saw refute, by=self this node refuting suspicions of itself.",
			append(node, "by"), nil),
		failures:    prometheus.NewDesc("troupe_swim_failures_total", "Members this node declared or learnt failed (confirmed dead).", node, nil),
		health:      prometheus.NewDesc("troupe_swim_health_score", "Lifeguard's awareness score: 0 healthy; n slows this node's probes n+1 times.", node, nil),
		incarnation: prometheus.NewDesc("troupe_swim_incarnation", "This node's SWIM incarnation.", node, nil),
		members:     prometheus.NewDesc("troupe_swim_members", "Members in this node's view, per state (self included).", append(node, "state"), nil),
		bytes:       prometheus.NewDesc("troupe_swim_gossip_bytes_total", "SWIM bytes (packets and streams), direction=sent or received.", append(node, "direction"), nil),
		packets:     prometheus.NewDesc("troupe_swim_gossip_packets_total", "SWIM packets, direction=sent or received.", append(node, "direction"), nil),
		datagrams:   prometheus.NewDesc("troupe_swim_datagrams_total", "Datagrams, direction=sent or received.", append(node, "direction"), nil),
		broadcasts:  prometheus.NewDesc("troupe_swim_broadcasts_total", "Broadcasts this node originated.", node, nil),
		delivered:   prometheus.NewDesc("troupe_swim_broadcasts_delivered_total", "Other members' broadcasts handed to this node's handler, once each.", node, nil),
		queued:      prometheus.NewDesc("troupe_swim_broadcasts_queued", "Broadcast frames (own and relayed) in the gossip queue.", node, nil),
		transmits:   prometheus.NewDesc("troupe_swim_broadcast_transmissions_total", "Broadcast frames (own and relayed) handed to SWIM's gossip, one per frame per packet.", node, nil),
		tbytes:      prometheus.NewDesc("troupe_swim_broadcast_bytes_total", "Bytes of the broadcast transmissions.", node, nil),
		relays:      prometheus.NewDesc("troupe_swim_broadcast_relays_total", "Other members' broadcasts queued for relaying.", node, nil),
		duplicates:  prometheus.NewDesc("troupe_swim_broadcast_duplicates_total", "Broadcast copies not delivered: already seen, older than the de-duplication window, or this node's own.", node, nil),
		dropped:     prometheus.NewDesc("troupe_swim_broadcasts_dropped_total", "Broadcast frames pruned from a full queue before their last transmission.", node, nil),
		refused:     prometheus.NewDesc("troupe_swim_user_packets_refused_total", "Datagram and broadcast packets refused, by reason.", append(node, "reason"), nil),
	}
}

type collector struct {
	m                                                      *Membership
	probes, probeFails, suspicions, refutations            *prometheus.Desc
	failures, health, incarnation, members, bytes, packets *prometheus.Desc
	datagrams, broadcasts, delivered, queued, transmits    *prometheus.Desc
	tbytes, relays, duplicates, dropped, refused           *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.probes, c.probeFails, c.suspicions, c.refutations, c.failures, c.health, c.incarnation, c.members, c.bytes, c.packets,
		c.datagrams, c.broadcasts, c.delivered, c.queued, c.transmits, c.tbytes, c.relays, c.duplicates, c.dropped, c.refused} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.Stats()
	node := string(c.m.Name())
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{node}, labels...)...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{node}, labels...)...)
	}
	counter(c.probes, s.Probes+s.ProbeFailures)
	counter(c.probeFails, s.ProbeFailures)
	counter(c.suspicions, s.Suspicions, "probe")
	counter(c.suspicions, s.GossipSuspicions, "gossip")
	counter(c.refutations, s.Refutations, "member")
	counter(c.refutations, s.SelfRefutations, "self")
	counter(c.failures, s.Failures)
	gauge(c.health, float64(s.HealthScore))
	gauge(c.incarnation, float64(s.Incarnation))
	gauge(c.members, float64(s.Alive), Alive.String())
	gauge(c.members, float64(s.Suspect), Suspect.String())
	gauge(c.members, float64(s.Failed), Failed.String())
	gauge(c.members, float64(s.Left), Left.String())
	counter(c.bytes, s.BytesSent, "sent")
	counter(c.bytes, s.BytesReceived, "received")
	counter(c.packets, s.PacketsSent, "sent")
	counter(c.packets, s.PacketsReceived, "received")
	p := s.Packets
	counter(c.datagrams, p.DatagramsSent, "sent")
	counter(c.datagrams, p.DatagramsReceived, "received")
	counter(c.broadcasts, p.Broadcasts)
	counter(c.delivered, p.Delivered)
	gauge(c.queued, float64(p.Queued))
	counter(c.transmits, p.Transmissions)
	counter(c.tbytes, p.TransmittedBytes)
	counter(c.relays, p.Relays)
	counter(c.duplicates, p.Duplicates)
	counter(c.dropped, p.Dropped)
	for _, reason := range refusalNames {
		counter(c.refused, p.Refused[reason], reason)
	}
}

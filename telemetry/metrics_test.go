package telemetry_test

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	pb "github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/telemetry"
	"github.com/troupe-dev/troupe/transport"
)

// scrape fetches url and parses it with Prometheus's text parser.
func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET %s: Content-Type %q, want Prometheus text", url, ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s does not parse as Prometheus text: %v", url, err)
	}
	return fams
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.Label {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// value finds the sample of family name whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (*dto.Metric, bool) {
	f, ok := fams[name]
	if !ok {
		return nil, false
	}
next:
	for _, m := range f.Metric {
		have := labels(m)
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m, true
	}
	return nil, false
}

func TestMetricsParse(t *testing.T) {
	c := newCluster(t, 2, testConfig(nil))
	srv := httptest.NewServer(telemetry.Handler(c.Node("node-1"), telemetry.HandlerConfig{}))
	defer srv.Close()
	// node-1 sends its statuses to node-2, the leader, which aggregates
	// them.
	agg := httptest.NewServer(telemetry.Handler(c.Node("node-2"), telemetry.HandlerConfig{}))
	defer agg.Close()
	status := map[string]string{"node": "node-1", "protocol": string(telemetry.Name), "type": "troupe.telemetry.v1.TelemetryStatus"}
	received := map[string]string{"node": "node-2", "protocol": string(telemetry.Name), "type": "troupe.telemetry.v1.TelemetryStatus"}
	actortest.Eventually(t, 5*time.Second, "node-2 counted statuses from node-1", func() bool {
		m, ok := value(scrape(t, agg.URL+"/metrics"), "troupe_received_bytes_total", received)
		return ok && m.GetCounter().GetValue() > 0
	})
	var fams map[string]*dto.MetricFamily
	actortest.Eventually(t, 5*time.Second, "node-1 counted statuses it sent", func() bool {
		fams = scrape(t, srv.URL+"/metrics")
		m, ok := value(fams, "troupe_messages_sent_total", status)
		return ok && m.GetCounter().GetValue() > 0
	})
	for _, tc := range []struct {
		name   string
		typ    dto.MetricType
		labels map[string]string
	}{
		{"troupe_messages_sent_total", dto.MetricType_COUNTER, status},
		{"troupe_sent_bytes_total", dto.MetricType_COUNTER, status},
		{"troupe_mailbox_depth", dto.MetricType_GAUGE, map[string]string{"protocol": "jobs"}},
		{"troupe_protocol_restarts_total", dto.MetricType_COUNTER, map[string]string{"protocol": "election"}},
		{"troupe_protocol_stopped", dto.MetricType_GAUGE, map[string]string{"protocol": "membership"}},
		{"troupe_unhandled_messages_total", dto.MetricType_COUNTER, map[string]string{"protocol": "telemetry"}},
		{"troupe_unknown_protocol_messages_total", dto.MetricType_COUNTER, map[string]string{"node": "node-1"}},
		{"troupe_rejected_envelopes_total", dto.MetricType_COUNTER, map[string]string{"node": "node-1"}},
		{"troupe_channel_messages_total", dto.MetricType_COUNTER, map[string]string{"node": "node-1", "protocol": string(telemetry.Name), "channel": "stream", "direction": "out"}},
		{"troupe_channel_bytes_total", dto.MetricType_COUNTER, map[string]string{"node": "node-1", "protocol": string(telemetry.Name), "channel": "stream", "direction": "out"}},
		{"troupe_channel_dropped_total", dto.MetricType_COUNTER, map[string]string{"node": "node-1", "protocol": string(telemetry.Name), "channel": "stream"}},
		{"go_goroutines", dto.MetricType_GAUGE, nil},
		{"process_cpu_seconds_total", dto.MetricType_COUNTER, nil},
	} {
		if _, ok := value(fams, tc.name, tc.labels); !ok {
			t.Errorf("no %s%v in /metrics", tc.name, tc.labels)
		} else if got := fams[tc.name].GetType(); got != tc.typ {
			t.Errorf("%s is a %v, want %v", tc.name, got, tc.typ)
		}
	}
	// Handler latencies of telemetry's handlers (one run in 16 is timed).
	var h *dto.Histogram
	actortest.Eventually(t, 5*time.Second, "a timed handler run of telemetry", func() bool {
		fams = scrape(t, srv.URL+"/metrics")
		f, ok := fams["troupe_handler_duration_seconds"]
		if !ok {
			return false
		}
		for _, m := range f.Metric {
			if l := labels(m); l["protocol"] == string(telemetry.Name) && l["node"] == "node-1" && l["type"] != "" && m.GetHistogram().GetSampleCount() > 0 {
				h = m.GetHistogram()
				return true
			}
		}
		return false
	})
	if n := len(h.GetBucket()); n < 20 {
		t.Errorf("the latency histogram has %d buckets", n)
	}
	last := h.GetBucket()[len(h.GetBucket())-1].GetCumulativeCount()
	if last > h.GetSampleCount() || h.GetSampleSum() <= 0 {
		t.Errorf("histogram count %d, last bucket %d, sum %v", h.GetSampleCount(), last, h.GetSampleSum())
	}
}

// TestProtoactorMetrics: protoactor's own metrics land in the registry
// /metrics serves, beside Troupe's.
func TestProtoactorMetrics(t *testing.T) {
	reg := telemetry.NewRegistry(nil)
	mp, err := telemetry.ProtoactorMeterProvider(reg)
	if err != nil {
		t.Fatal(err)
	}
	c := clustertest.NewCluster(t, 1, cluster.NodeConfig(func(_ int, cfg *actors.Config) { cfg.MetricProvider = mp }))
	n := c.Nodes()[0]
	if err := reg.Register(telemetry.NewCollector(n)); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(func() actors.Protocol { return flaky{} }); err != nil {
		t.Fatal(err)
	}
	if err := n.Tell("flaky", fail{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(telemetry.Handler(n, telemetry.HandlerConfig{Metrics: reg}))
	defer srv.Close()
	var fams map[string]*dto.MetricFamily
	actortest.Eventually(t, 5*time.Second, "protoactor counted the restart", func() bool {
		fams = scrape(t, srv.URL+"/metrics")
		m, ok := value(fams, "troupe_protocol_restarts_total", map[string]string{"protocol": "flaky"})
		return ok && m.GetCounter().GetValue() == 1 && has(fams, "protoactor_actor_restarted_count")
	})
	// protoactor_actor_mailbox_length never shows: protoactor observes it
	// in a callback registered without the instrument, which the
	// OpenTelemetry SDK refuses (troupe_mailbox_depth has the depths).
	if testing.Verbose() {
		for name, f := range fams {
			if strings.HasPrefix(name, "protoactor") {
				t.Logf("%s %v %d series", name, f.GetType(), len(f.Metric))
			}
		}
	}
	for _, name := range []string{"protoactor_actor_spawn_count", "protoactor_actor_restarted_count",
		"protoactor_actor_failure_count", "protoactor_actor_message_receive_duration_seconds"} {
		if !has(fams, name) {
			t.Errorf("no protoactor metric %s* in /metrics", name)
		}
	}
}

// has reports whether a family's name starts with prefix (the OpenTelemetry
// exporter adds unit and _total suffixes).
func has(fams map[string]*dto.MetricFamily, prefix string) bool {
	for name := range fams {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// BenchmarkScrape measures GET /metrics on a node of a 3-node cluster
// running membership, election, jobs and telemetry.
func BenchmarkScrape(b *testing.B) {
	c := newCluster(b, 3, testConfig(nil))
	srv := httptest.NewServer(telemetry.Handler(c.Node("node-1"), telemetry.HandlerConfig{Metrics: telemetry.NewRegistry(c.Node("node-1"))}))
	defer srv.Close()
	size := 0
	b.ResetTimer()
	for b.Loop() {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		size = int(n)
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}

// BenchmarkCollect gathers Troupe's own metrics of one node (no HTTP, no
// Go or process collectors, no encoding).
func BenchmarkCollect(b *testing.B) {
	c := newCluster(b, 3, testConfig(nil))
	reg := prometheus.NewRegistry()
	reg.MustRegister(telemetry.NewCollector(c.Node("node-1")))
	series := 0
	for b.Loop() {
		fams, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		series = 0
		for _, f := range fams {
			series += len(f.Metric)
		}
	}
	b.ReportMetric(float64(series), "series")
}

// gossipPackets is a packet service whose every broadcast is reported
// transmitted twice and then dropped, to one node's handler.
type gossipPackets struct{ h transport.PacketHandler }

func (p *gossipPackets) SendDatagram(string, string, []byte) error { return transport.ErrUnknownNode }
func (p *gossipPackets) Broadcast(protocol string, b []byte) error {
	p.h.Transmitted(transport.Gossip, protocol, len(b))
	p.h.Transmitted(transport.Gossip, protocol, len(b))
	p.h.Dropped(transport.Gossip, protocol)
	return nil
}
func (p *gossipPackets) Limits() (int, int)               { return 1024, 1024 }
func (p *gossipPackets) Handle(h transport.PacketHandler) { p.h = h }

// broadcaster broadcasts one Ping in Init and sends a datagram nowhere.
type broadcaster struct{}

func (broadcaster) Name() actors.ProtocolName { return "gossiper" }
func (broadcaster) Init(ctx *actors.Context) error {
	_ = ctx.SendOn(actors.Datagram, "node-9", &pb.Ping{N: 1})
	return ctx.Broadcast(&pb.Ping{N: 1})
}

// TestChannelMetrics: the troupe_channel_* series follow
// ProtocolStats.Channels.
func TestChannelMetrics(t *testing.T) {
	c := clustertest.NewCluster(t, 1)
	n := c.Node("node-1")
	n.SetPackets(&gossipPackets{})
	if err := n.Start(func() actors.Protocol { return broadcaster{} }); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(telemetry.NewCollector(n))
	gathered, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams := map[string]*dto.MetricFamily{}
	for _, f := range gathered {
		fams[f.GetName()] = f
	}
	size := float64(n.Stats().Protocols["gossiper"].Channels[actors.Gossip].BytesOut)
	gossip := map[string]string{"node": "node-1", "protocol": "gossiper", "channel": "gossip"}
	with := func(k, v string) map[string]string {
		m := maps.Clone(gossip)
		m[k] = v
		return m
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"troupe_channel_messages_total", with("direction", "out"), 1},
		{"troupe_channel_messages_total", with("direction", "in"), 0},
		{"troupe_channel_bytes_total", with("direction", "out"), size},
		{"troupe_channel_packets_total", gossip, 2},
		{"troupe_channel_packet_bytes_total", gossip, 2 * size},
		{"troupe_channel_dropped_total", gossip, 1},
		{"troupe_channel_dropped_total", with("channel", "datagram"), 1},
		{"troupe_channel_messages_total", map[string]string{"protocol": "gossiper", "channel": "datagram", "direction": "out"}, 0},
	} {
		m, ok := value(fams, tc.name, tc.labels)
		if !ok {
			t.Errorf("no %s%v", tc.name, tc.labels)
		} else if got := m.GetCounter().GetValue(); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if size == 0 {
		t.Error("the broadcast counted no bytes")
	}
	if _, ok := value(fams, "troupe_channel_messages_total", map[string]string{"protocol": "gossiper", "channel": "stream"}); ok {
		t.Error("a series for the stream, which the protocol did not use")
	}
}

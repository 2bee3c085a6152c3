package actors_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	pb "github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// fakeFabric is an in-memory packet service for a few nodes: a datagram
// is handed to its receiver at once, a broadcast to every other member,
// each copy reported as one transmission of the sender.
type fakeFabric struct {
	mu                  sync.Mutex
	handlers            map[string]transport.PacketHandler
	datagram, broadcast int // the limits
}

func newFakeFabric() *fakeFabric {
	return &fakeFabric{handlers: map[string]transport.PacketHandler{}, datagram: 512, broadcast: 256}
}

// attach gives node n a packet service on the fabric.
func (f *fakeFabric) attach(n *actors.Node) { n.SetPackets(&fakePackets{f: f, node: string(n.Name())}) }

func (f *fakeFabric) handler(node string) transport.PacketHandler {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handlers[node]
}

type fakePackets struct {
	f    *fakeFabric
	node string
}

var _ transport.Packets = (*fakePackets)(nil)

func (p *fakePackets) SendDatagram(to, protocol string, b []byte) error {
	if len(b) > p.f.datagram {
		return transport.ErrTooLarge
	}
	p.f.mu.Lock()
	dst, ok := p.f.handlers[to]
	src := p.f.handlers[p.node]
	p.f.mu.Unlock()
	if !ok {
		return transport.ErrUnknownNode
	}
	src.Transmitted(transport.Datagram, protocol, len(b))
	dst.Receive(transport.Datagram, append([]byte(nil), b...))
	return nil
}

func (p *fakePackets) Broadcast(protocol string, b []byte) error {
	p.f.mu.Lock()
	var dsts []transport.PacketHandler
	for n, h := range p.f.handlers {
		if n != p.node {
			dsts = append(dsts, h)
		}
	}
	src := p.f.handlers[p.node]
	p.f.mu.Unlock()
	for _, h := range dsts {
		src.Transmitted(transport.Gossip, protocol, len(b))
		h.Receive(transport.Gossip, append([]byte(nil), b...))
	}
	return nil
}

func (p *fakePackets) Limits() (int, int) { return p.f.datagram, p.f.broadcast }

func (p *fakePackets) Handle(h transport.PacketHandler) {
	p.f.mu.Lock()
	p.f.handlers[p.node] = h
	p.f.mu.Unlock()
}

// got is a message a channel test's protocol handled.
type got struct {
	to, from actors.NodeName
	n        uint64
	ch       actors.Channel
}

type gotLog struct {
	mu  sync.Mutex
	all []got
}

func (l *gotLog) add(g got) { l.mu.Lock(); l.all = append(l.all, g); l.mu.Unlock() }

func (l *gotLog) snapshot() []got {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]got(nil), l.all...)
}

// run is a request that runs f on the protocol's mailbox, for tests to
// send from inside a handler.
type run struct {
	actors.Returns[bool]
	f func(ctx *actors.Context) error
}

func call(t *testing.T, n *actors.Node, f func(ctx *actors.Context) error) error {
	t.Helper()
	_, err := actors.Call(context.Background(), n, "ch", &run{f: f})
	return err
}

// Blob is a message of any size.
type Blob struct{ B []byte }

var _ = pb.Register[Blob]("actorstest.channels.Blob")

// channelProtocol records the Pings it handles, with the channel each came
// by; use, when not Stream, is the channel it sends on.
func channelProtocol(log *gotLog, use actors.Channel) actors.Factory {
	return protocol("ch", func(ctx *actors.Context) error {
		if use != actors.Stream {
			if err := ctx.UseChannel(use); err != nil {
				return err
			}
		}
		actors.OnMessage(ctx, func(ctx *actors.Context, from actors.NodeName, m *pb.Ping) error {
			log.add(got{to: ctx.Node(), from: from, n: m.N, ch: ctx.Arrived()})
			return nil
		})
		actors.OnRequest(ctx, func(ctx *actors.Context, r *run) (bool, error) { return true, r.f(ctx) })
		return nil
	})
}

// startOnFabric attaches every node of c to one fake fabric and starts the
// channel protocol on each, its Send on ch.
func startOnFabric(t *testing.T, c *cluster.Cluster, ch actors.Channel) *gotLog {
	t.Helper()
	fab := newFakeFabric()
	log := &gotLog{}
	for _, n := range c.Nodes() {
		fab.attach(n)
		if err := n.Start(channelProtocol(log, ch)); err != nil {
			t.Fatal(err)
		}
	}
	return log
}

func TestDatagramsAndBroadcastsReachTheHandlers(t *testing.T) {
	actortest.Virtual(t, testDatagramsAndBroadcastsReachTheHandlers)
}

func testDatagramsAndBroadcastsReachTheHandlers(t *testing.T) {
	c := clustertest.NewCluster(t, 3)
	log := startOnFabric(t, c, actors.Stream)
	n1 := c.Node("node-1")
	if err := call(t, n1, func(ctx *actors.Context) error {
		return errors.Join(
			ctx.SendOn(actors.Datagram, "node-2", &pb.Ping{N: 1}),
			ctx.Broadcast(&pb.Ping{N: 2}),
			ctx.Send("node-2", &pb.Ping{N: 3}),
			ctx.SendOn(actors.Stream, "node-3", &pb.Ping{N: 4}),
		)
	}); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, wait, "five messages handled", func() bool { return len(log.snapshot()) == 5 })
	for _, n := range c.Nodes() {
		flush(t, n, "ch")
	}
	want := map[got]bool{
		{"node-2", "node-1", 1, actors.Datagram}: true,
		{"node-2", "node-1", 2, actors.Gossip}:   true,
		{"node-3", "node-1", 2, actors.Gossip}:   true,
		{"node-2", "node-1", 3, actors.Stream}:   true,
		{"node-3", "node-1", 4, actors.Stream}:   true,
	}
	for _, g := range log.snapshot() {
		if !want[g] {
			t.Errorf("unexpected delivery %+v", g)
		}
		delete(want, g)
	}
	for g := range want {
		t.Errorf("missing delivery %+v", g)
	}

	s1 := n1.Stats().Protocols["ch"].Channels
	size := int64(proto.Size(&pb.Envelope{From: "node-1", To: "node-2", Protocol: "ch", Type: "troupe.examples.v1.Ping", Payload: []byte{8, 1}}))
	if d := s1[actors.Datagram]; d.Sent != 1 || d.BytesOut != size || d.Packets != 1 || d.PacketBytes != size || d.Received != 0 || d.Dropped != 0 {
		t.Errorf("node-1 datagram stats %+v, want 1 sent and 1 packet of %d bytes", d, size)
	}
	if g := s1[actors.Gossip]; g.Sent != 1 || g.Packets != 2 || g.PacketBytes != 2*g.BytesOut || g.BytesOut == 0 {
		t.Errorf("node-1 gossip stats %+v, want 1 sent in 2 transmissions", g)
	}
	if s := s1[actors.Stream]; s.Sent != 2 || s.BytesOut == 0 || s.Packets != 0 {
		t.Errorf("node-1 stream stats %+v, want 2 sent", s)
	}
	s2 := c.Node("node-2").Stats().Protocols["ch"].Channels
	if d := s2[actors.Datagram]; d.Received != 1 || d.BytesIn != size || d.Sent != 0 {
		t.Errorf("node-2 datagram stats %+v, want 1 received of %d bytes", d, size)
	}
	if g, s := s2[actors.Gossip], s2[actors.Stream]; g.Received != 1 || s.Received != 1 {
		t.Errorf("node-2 gossip %+v and stream %+v, want 1 received each", g, s)
	}

	// The channels are JSON keys by name, and survive a round trip.
	b, err := json.Marshal(n1.Stats().Protocols["ch"])
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"stream":`, `"datagram":`, `"gossip":`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("ProtocolStats JSON lacks %s: %s", key, b)
		}
	}
	var back actors.ProtocolStats
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Channels, s1) {
		t.Errorf("channels after a JSON round trip %+v, want %+v", back.Channels, s1)
	}
}

func TestUseChannelMakesSendUseDatagrams(t *testing.T) {
	actortest.Virtual(t, testUseChannelMakesSendUseDatagrams)
}

func testUseChannelMakesSendUseDatagrams(t *testing.T) {
	c := clustertest.NewCluster(t, 2)
	log := startOnFabric(t, c, actors.Datagram)
	n1 := c.Node("node-1")
	if err := call(t, n1, func(ctx *actors.Context) error {
		if ctx.Channel() != actors.Datagram {
			t.Errorf("Channel() = %v after UseChannel(Datagram)", ctx.Channel())
		}
		return errors.Join(ctx.Send("node-2", &pb.Ping{N: 1}), ctx.Send("node-1", &pb.Ping{N: 2}))
	}); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, wait, "both handled", func() bool { return len(log.snapshot()) == 2 })
	for _, g := range log.snapshot() {
		if g.ch != actors.Datagram || g.from != "node-1" {
			t.Errorf("delivery %+v, want a datagram from node-1", g)
		}
	}
	flush(t, n1, "ch")
	s := n1.Stats().Protocols["ch"].Channels
	if s[actors.Datagram].Sent != 2 || s[actors.Datagram].Packets != 1 || s[actors.Stream].Sent != 0 {
		t.Errorf("stats %+v: want 2 datagrams sent (1 packet, the other to itself), none on the stream", s)
	}

	err := call(t, n1, func(ctx *actors.Context) error {
		var errs []error
		for _, e := range []error{
			ctx.UseChannel(actors.Gossip),
			ctx.UseChannel(actors.Channel(9)),
			ctx.SendOn(actors.Gossip, "node-2", &pb.Ping{}),
			ctx.SendOn(actors.Channel(9), "node-2", &pb.Ping{}),
		} {
			if !errors.Is(e, actors.ErrWrongChannel) {
				errs = append(errs, e)
			}
		}
		if ctx.Channel() != actors.Datagram {
			t.Errorf("a refused UseChannel changed the channel to %v", ctx.Channel())
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Fatalf("want ErrWrongChannel from each: %v", err)
	}
	err = call(t, n1, func(ctx *actors.Context) error { return ctx.UseChannel(actors.Gossip) })
	if !strings.Contains(err.Error(), "use Broadcast") {
		t.Errorf("UseChannel(Gossip): %v, want it to point to Broadcast", err)
	}
}

func TestChannelSendErrors(t *testing.T) { actortest.Virtual(t, testChannelSendErrors) }

func testChannelSendErrors(t *testing.T) {
	c := clustertest.NewCluster(t, 2)
	fab := newFakeFabric()
	fab.attach(c.Node("node-2"))
	log := &gotLog{}
	for _, n := range c.Nodes() {
		if err := n.Start(channelProtocol(log, actors.Stream)); err != nil {
			t.Fatal(err)
		}
	}
	n1, n2 := c.Node("node-1"), c.Node("node-2")

	// node-1 has no packet service.
	err := call(t, n1, func(ctx *actors.Context) error { return ctx.SendOn(actors.Datagram, "node-2", &pb.Ping{}) })
	if !errors.Is(err, transport.ErrNoPackets) || !strings.Contains(err.Error(), "protocol ch") || !strings.Contains(err.Error(), "on datagram") {
		t.Errorf("datagram without a packet service: %v", err)
	}
	err = call(t, n1, func(ctx *actors.Context) error { return ctx.Broadcast(&pb.Ping{}) })
	if !errors.Is(err, transport.ErrNoPackets) || !strings.Contains(err.Error(), "on gossip") {
		t.Errorf("broadcast without a packet service: %v", err)
	}

	// Over the limits.
	big := &Blob{B: make([]byte, 300)}
	err = call(t, n2, func(ctx *actors.Context) error { return ctx.Broadcast(big) })
	if !errors.Is(err, transport.ErrTooLarge) || !strings.Contains(err.Error(), "the gossip limit is 256") {
		t.Errorf("oversize broadcast: %v", err)
	}
	err = call(t, n2, func(ctx *actors.Context) error {
		return ctx.SendOn(actors.Datagram, "node-1", &Blob{B: make([]byte, 600)})
	})
	if !errors.Is(err, transport.ErrTooLarge) || !strings.Contains(err.Error(), "the datagram limit is 512") {
		t.Errorf("oversize datagram: %v", err)
	}
	err = call(t, n2, func(ctx *actors.Context) error {
		return ctx.SendOn(actors.Datagram, "node-1", &Blob{B: make([]byte, transport.MaxEnvelopeSize)})
	})
	if !errors.Is(err, transport.ErrTooLarge) {
		t.Errorf("a datagram over MaxEnvelopeSize: %v", err)
	}
	// The service's own refusal, and a name that is no node's.
	err = call(t, n2, func(ctx *actors.Context) error { return ctx.SendOn(actors.Datagram, "node-1", &pb.Ping{}) })
	if !errors.Is(err, transport.ErrUnknownNode) {
		t.Errorf("datagram to a node off the fabric: %v", err)
	}
	err = call(t, n2, func(ctx *actors.Context) error { return ctx.SendOn(actors.Datagram, "no/such node", &pb.Ping{}) })
	if !errors.Is(err, transport.ErrUnknownNode) {
		t.Errorf("datagram to an invalid name: %v", err)
	}
	// An unregistered type is refused as Send refuses it, and is no drop.
	type unregistered struct{}
	err = call(t, n2, func(ctx *actors.Context) error { return ctx.Broadcast(&unregistered{}) })
	if !errors.Is(err, pb.ErrNotRegistered) {
		t.Errorf("broadcast of an unregistered type: %v", err)
	}

	s1 := n1.Stats().Protocols["ch"].Channels
	if s1[actors.Datagram] != (actors.ChannelStats{Dropped: 1}) || s1[actors.Gossip] != (actors.ChannelStats{Dropped: 1}) {
		t.Errorf("node-1 channels %+v, want one dropped datagram and broadcast", s1)
	}
	s2 := n2.Stats().Protocols["ch"].Channels
	if s2[actors.Datagram] != (actors.ChannelStats{Dropped: 4}) || s2[actors.Gossip] != (actors.ChannelStats{Dropped: 1}) {
		t.Errorf("node-2 channels %+v, want 4 dropped datagrams and 1 broadcast", s2)
	}
	if len(log.snapshot()) != 0 {
		t.Errorf("failed sends delivered %+v", log.snapshot())
	}
}

func TestForgedPacketsAreRefusedAndCounted(t *testing.T) {
	actortest.Virtual(t, testForgedPacketsAreRefusedAndCounted)
}

func testForgedPacketsAreRefusedAndCounted(t *testing.T) {
	c := clustertest.NewCluster(t, 1)
	n := c.Node("node-1")
	fab := newFakeFabric()
	fab.attach(n)
	log := &gotLog{}
	if err := n.Start(channelProtocol(log, actors.Stream)); err != nil {
		t.Fatal(err)
	}
	h := fab.handler("node-1")
	ping, _ := proto.Marshal(&pb.Ping{N: 7})
	env := func(mod func(e *pb.Envelope)) []byte {
		e := &pb.Envelope{From: "node-9", To: "node-1", Protocol: "ch", Type: "troupe.examples.v1.Ping", Payload: ping}
		mod(e)
		b, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	gossip := func(e *pb.Envelope) { e.To = "" }
	refused := []struct {
		what string
		ch   actors.Channel
		b    []byte
	}{
		{"garbage", actors.Datagram, []byte{0xff, 0xff, 0xff, 0x0f, 0x01}},
		{"empty", actors.Datagram, nil},
		{"empty broadcast", actors.Gossip, nil},
		{"huge", actors.Datagram, make([]byte, transport.MaxEnvelopeSize+1)},
		{"datagram for another node", actors.Datagram, env(func(e *pb.Envelope) { e.To = "node-2" })},
		{"datagram without a receiver", actors.Datagram, env(gossip)},
		{"broadcast naming a receiver", actors.Gossip, env(func(*pb.Envelope) {})},
		{"from this node", actors.Datagram, env(func(e *pb.Envelope) { e.From = "node-1" })},
		{"broadcast from this node", actors.Gossip, env(func(e *pb.Envelope) { gossip(e); e.From = "node-1" })},
		{"no sender", actors.Gossip, env(func(e *pb.Envelope) { gossip(e); e.From = "" })},
		{"bad protocol name", actors.Datagram, env(func(e *pb.Envelope) { e.Protocol = "c h" })},
		{"bad type name", actors.Datagram, env(func(e *pb.Envelope) { e.Type = "not a type!" })},
		{"an ack", actors.Datagram, env(func(e *pb.Envelope) { e.Kind = pb.Envelope_KIND_ACK; e.Session = 1; e.Ack = 3 })},
		{"reliable data", actors.Gossip, env(func(e *pb.Envelope) { gossip(e); e.Session = 1; e.Seq = 1 })},
		{"on the stream", actors.Stream, env(func(*pb.Envelope) {})},
		{"on an unknown channel", actors.Channel(200), env(func(*pb.Envelope) {})},
	}
	for _, r := range refused {
		h.Receive(r.ch, r.b)
	}
	h.Receive(actors.Datagram, env(func(e *pb.Envelope) { e.Protocol = "nope" }))            // unknown protocol
	h.Receive(actors.Gossip, env(func(e *pb.Envelope) { gossip(e); e.Payload = []byte{8} })) // truncated payload: the protocol drops it
	h.Transmitted(actors.Channel(200), "ch", 10)                                             // nonsense reports are ignored
	h.Transmitted(actors.Gossip, "nope", 10)
	h.Dropped(actors.Channel(200), "ch")
	h.Dropped(actors.Gossip, "ch")
	h.Receive(actors.Datagram, env(func(*pb.Envelope) {})) // then a good datagram
	h.Receive(actors.Gossip, env(gossip))                  // and a good broadcast

	actortest.Eventually(t, wait, "the good datagram and broadcast handled", func() bool { return len(log.snapshot()) == 2 })
	flush(t, n, "ch")
	for _, g := range log.snapshot() {
		if g.from != "node-9" || g.n != 7 {
			t.Errorf("delivery %+v, want Ping 7 from node-9", g)
		}
	}
	s := n.Stats()
	if s.Rejected != int64(len(refused)) || s.UnknownProtocol != 1 {
		t.Errorf("rejected %d (want %d), unknown protocol %d (want 1)", s.Rejected, len(refused), s.UnknownProtocol)
	}
	ps := s.Protocols["ch"]
	if ps.Unhandled != 1 || ps.Restarts != 0 || ps.Stopped {
		t.Errorf("protocol stats %+v: want the truncated payload unhandled, no restart", ps)
	}
	if g := ps.Channels[actors.Gossip]; g.Dropped != 1 || g.Packets != 0 || g.Received != 1 {
		t.Errorf("gossip stats %+v: want 1 received, 1 dropped", g)
	}
	if d := ps.Channels[actors.Datagram]; d.Received != 1 {
		t.Errorf("datagram stats %+v: want 1 received", d)
	}
}

func TestSetPacketsNilRemovesTheService(t *testing.T) {
	actortest.Virtual(t, func(t *testing.T) {
		c := clustertest.NewCluster(t, 2)
		startOnFabric(t, c, actors.Stream)
		n1 := c.Node("node-1")
		n1.SetPackets(nil)
		err := call(t, n1, func(ctx *actors.Context) error { return ctx.SendOn(actors.Datagram, "node-2", &pb.Ping{}) })
		if !errors.Is(err, transport.ErrNoPackets) {
			t.Errorf("datagram after SetPackets(nil): %v", err)
		}
	})
}

// FuzzPacketReceive hands arbitrary bytes to a node's packet handler, as
// a datagram and as a broadcast: each is refused, counted for an unknown
// protocol, or handed to the protocol (handled or dropped there), exactly
// one of them, and nothing panics.
func FuzzPacketReceive(f *testing.F) {
	ping, _ := proto.Marshal(&pb.Ping{N: 7})
	for _, e := range []*pb.Envelope{
		{From: "node-9", To: "node-1", Protocol: "ch", Type: "troupe.examples.v1.Ping", Payload: ping},
		{From: "node-9", Protocol: "ch", Type: "troupe.examples.v1.Ping", Payload: ping},
		{From: "node-9", To: "node-1", Protocol: "other", Type: "troupe.examples.v1.Pong"},
	} {
		b, _ := proto.Marshal(e)
		f.Add(b)
	}
	f.Add([]byte{0xff, 0x01})
	c := clustertest.NewCluster(f, 1)
	n := c.Node("node-1")
	fab := newFakeFabric()
	fab.attach(n)
	if err := n.Start(channelProtocol(&gotLog{}, actors.Stream)); err != nil {
		f.Fatal(err)
	}
	h := fab.handler("node-1")
	type tally struct{ rejected, unknown, handed int64 }
	count := func() tally {
		s := n.Stats()
		ps := s.Protocols["ch"]
		return tally{s.Rejected, s.UnknownProtocol,
			ps.Unhandled + ps.Channels[actors.Datagram].Received + ps.Channels[actors.Gossip].Received}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, ch := range []actors.Channel{actors.Datagram, actors.Gossip} {
			before := count()
			h.Receive(ch, append([]byte(nil), b...))
			flush(t, n, "ch")
			after := count()
			outcomes := 0
			if after.rejected > before.rejected {
				outcomes++
			}
			if after.unknown > before.unknown {
				outcomes++
			}
			if after.handed > before.handed {
				outcomes++
			}
			if outcomes != 1 {
				t.Fatalf("%v of %x: counters went from %+v to %+v; want exactly one outcome", ch, b, before, after)
			}
		}
	})
}

// UseChannel holds for the incarnation: a restart makes a new Context,
// back on the stream unless Init chooses again.
func TestUseChannelLastsOneIncarnation(t *testing.T) {
	actortest.Virtual(t, func(t *testing.T) {
		c := clustertest.NewCluster(t, 1)
		n := c.Node("node-1")
		newFakeFabric().attach(n)
		if err := n.Start(channelProtocol(&gotLog{}, actors.Stream)); err != nil {
			t.Fatal(err)
		}
		if err := call(t, n, func(ctx *actors.Context) error { return ctx.UseChannel(actors.Datagram) }); err != nil {
			t.Fatal(err)
		}
		var ch actors.Channel
		_ = call(t, n, func(ctx *actors.Context) error { ch = ctx.Channel(); return nil })
		if ch != actors.Datagram {
			t.Fatalf("channel %v after UseChannel(Datagram)", ch)
		}
		err := call(t, n, func(*actors.Context) error { panic("restart me") })
		if !errors.Is(err, actors.ErrHandlerPanicked) {
			t.Fatalf("a panicking request: %v", err)
		}
		actortest.Eventually(t, wait, "the restart", func() bool { return n.Stats().Protocols["ch"].Restarts == 1 })
		actortest.Eventually(t, wait, "the new incarnation on the stream", func() bool {
			return call(t, n, func(ctx *actors.Context) error { ch = ctx.Channel(); return nil }) == nil && ch == actors.Stream
		})
	})
}

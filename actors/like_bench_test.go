package actors_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/cluster"
	pb "github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/security"
)

// Like-for-like benchmarks (BenchmarkRemote, BenchmarkLocal): raw
// protoactor and Troupe doing the same application work in the same
// shapes, each driven the same way.
//
//   - event: the driver gives the sender one event (a local message to a
//     bare actor; a Tell to a protocol) whose handler sends exactly one
//     Ping to the peer, which counts it. An op is one message delivered.
//   - burst16, burst256: the same, the handler sending 16 or 256 Pings per
//     event. An op is one message delivered.
//   - roundtrip: one Ping out, one Pong back, the next Ping sent by the
//     handler of the Pong; one outstanding at a time. An op is one round
//     trip.
//
// For event and the bursts, the driver paces both sides identically: it
// hands out events worth likeWindow messages, waits until the peer has
// counted all of them, then the next round; neither side floods.

// likeWindow is how many messages the driver lets be in flight (sent by it
// and not yet counted by the peer) in event and burst shapes.
const likeWindow = 256

// likeShapes are the one-way shapes: their names and messages per event.
var likeShapes = []struct {
	name string
	k    int
}{{"event", 1}, {"burst16", 16}, {"burst256", 256}}

// pacer counts messages and signals when a round's target is reached.
type pacer struct {
	seen, want atomic.Int64
	round      chan struct{}
}

func newPacer() *pacer { return &pacer{round: make(chan struct{}, 1)} }

func (p *pacer) hit() {
	if p.seen.Add(1) == p.want.Load() {
		p.round <- struct{}{}
	}
}

// run delivers b.N messages in events of k (the last may be smaller),
// likeWindow messages a round; event hands one event of n messages to the
// sender. It reports allocations and CPU per message.
func (p *pacer) run(b *testing.B, k int, event func(n int)) {
	deadline := time.NewTimer(10 * time.Minute)
	defer deadline.Stop()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for sent := 0; sent < b.N; {
		end := min(sent+likeWindow, b.N)
		p.want.Store(int64(end))
		for sent < end {
			n := min(k, end-sent)
			event(n)
			sent += n
		}
		select {
		case <-p.round:
		case <-deadline.C:
			b.Fatalf("only %d of %d messages arrived", p.seen.Load(), end)
		}
	}
	cpu.report(b)
}

// rawPaceSink is a bare actor counting Pings.
type rawPaceSink struct{ p *pacer }

func (s *rawPaceSink) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*pb.Ping); ok {
		s.p.hit()
	}
}

// rawSender is a bare actor that, for each *burst, sends burst.n Pings to
// peer.
type rawSender struct {
	peer *actor.PID
	msg  pb.Ping
}

func (s *rawSender) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*burst); ok {
		for range m.n {
			ctx.Send(s.peer, &s.msg)
		}
	}
}

// rally asks a protocol or actor to play n round trips with its peer, then
// close done.
type rally struct {
	to   actors.NodeName
	n    int
	done chan struct{}
}

// rawPonger answers each Ping with a Pong.
type rawPonger struct{ pong pb.Pong }

func (p *rawPonger) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*pb.Ping); ok {
		ctx.Respond(&p.pong)
	}
}

// rawPinger plays a rally with peer: ctx.Request, the Pong as a message.
type rawPinger struct {
	peer *actor.PID
	left int
	done chan struct{}
	ping pb.Ping
}

func (r *rawPinger) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *rally:
		r.left, r.done = m.n, m.done
		ctx.Request(r.peer, &r.ping)
	case *pb.Pong:
		if r.left--; r.left > 0 {
			ctx.Request(r.peer, &r.ping)
			return
		}
		close(r.done)
	}
}

// rallyRun times one rally of b.N round trips started by start.
func rallyRun(b *testing.B, start func(r *rally)) {
	done := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	start(&rally{to: "node-2", n: b.N, done: done})
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		b.Fatal("the rally did not finish")
	}
	cpu.report(b)
}

// likeRemoteProtocol is the Troupe side of BenchmarkRemote, on both nodes:
// a *burst makes it Send burst.n Pings to burst.to, which counts them; a
// *rally makes it Send a Ping to rally.to, which answers each with a Pong,
// the next Ping sent on the Pong.
func likeRemoteProtocol(p *pacer) actors.Factory {
	return protocol("like", func(ctx *actors.Context) error {
		ping, pong := &pb.Ping{N: 1}, &pb.Pong{}
		var r *rally
		actors.OnTell(ctx, func(ctx *actors.Context, b *burst) error {
			for range b.n {
				if err := ctx.Send(b.to, ping); err != nil {
					return err
				}
			}
			return nil
		})
		actors.OnTell(ctx, func(ctx *actors.Context, m *rally) error {
			r = m
			return ctx.Send(r.to, ping)
		})
		actors.OnMessage(ctx, func(ctx *actors.Context, from actors.NodeName, _ *pb.Ping) error {
			if p != nil {
				p.hit()
				return nil
			}
			return ctx.Send(from, pong)
		})
		actors.OnMessage(ctx, func(ctx *actors.Context, from actors.NodeName, _ *pb.Pong) error {
			if r.n--; r.n > 0 {
				return ctx.Send(from, ping)
			}
			close(r.done)
			return nil
		})
		return nil
	})
}

// likeCluster starts two nodes on loopback (over mutual TLS when mtls is
// set, a certificate per node) running likeRemoteProtocol(p).
func likeCluster(b *testing.B, mtls bool, p *pacer) *actors.Ref {
	opt := cluster.Remote()
	if mtls {
		ca, err := security.NewCA("bench CA", time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		opt = cluster.RemoteTLS(ca)
	}
	cl, err := cluster.Local(2, opt)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cl.Stop() })
	if err := cl.Start(likeRemoteProtocol(p)); err != nil {
		b.Fatal(err)
	}
	ref, err := cl.Node("node-1").Ref("like")
	if err != nil {
		b.Fatal(err)
	}
	return &ref
}

// rawPair starts two bare protoactor systems with remote on loopback,
// spawns peer as "peer" on the second and returns the first and the
// peer's remote PID.
func rawPair(b *testing.B, peer actor.Producer) (*actor.ActorSystem, *actor.PID) {
	sender, receiver := quietSystem(), quietSystem()
	rs := remote.NewRemote(sender, remote.Configure("127.0.0.1", 0))
	rr := remote.NewRemote(receiver, remote.Configure("127.0.0.1", 0))
	rs.Start()
	rr.Start()
	b.Cleanup(func() { stopRemote(rs); stopRemote(rr) })
	if _, err := receiver.Root.SpawnNamed(actor.PropsFromProducer(peer), "peer"); err != nil {
		b.Fatal(err)
	}
	return sender, actor.NewPID(receiver.Address(), "peer")
}

// BenchmarkRemote compares raw protoactor remote with Troupe between two
// nodes on loopback gRPC, doing the same application work in the same
// shapes (see likeWindow and likeShapes). raw: bare actors, the sender
// relaying each local event as ctx.Send to the peer's remote PID; the
// round trip ctx.Request and ctx.Respond. troupe: protocols, the sender's
// OnTell handler calling Context.Send, the peer's OnMessage handler
// counting or answering with Context.Send. troupe-mtls: troupe over mutual
// TLS.
func BenchmarkRemote(b *testing.B) {
	for _, s := range likeShapes {
		b.Run(s.name+"/raw", func(b *testing.B) {
			p := newPacer()
			sys, peer := rawPair(b, func() actor.Actor { return &rawPaceSink{p} })
			sender := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &rawSender{peer: peer, msg: pb.Ping{N: 1}} }))
			events := [likeWindow + 1]burst{}
			for i := range events {
				events[i].n = i
			}
			p.run(b, s.k, func(n int) { sys.Root.Send(sender, &events[n]) })
		})
		for _, mode := range []string{"troupe", "troupe-mtls"} {
			b.Run(s.name+"/"+mode, func(b *testing.B) {
				p := newPacer()
				ref := likeCluster(b, mode == "troupe-mtls", p)
				events := [likeWindow + 1]burst{}
				for i := range events {
					events[i] = burst{to: "node-2", n: i}
				}
				p.run(b, s.k, func(n int) {
					if err := ref.Tell(&events[n]); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
	}
	b.Run("roundtrip/raw", func(b *testing.B) {
		sys, peer := rawPair(b, func() actor.Actor { return &rawPonger{} })
		pinger := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &rawPinger{peer: peer, ping: pb.Ping{N: 1}} }))
		rallyRun(b, func(r *rally) { sys.Root.Send(pinger, r) })
	})
	for _, mode := range []string{"troupe", "troupe-mtls"} {
		b.Run("roundtrip/"+mode, func(b *testing.B) {
			ref := likeCluster(b, mode == "troupe-mtls", nil)
			rallyRun(b, func(r *rally) {
				if err := ref.Tell(r); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// likeLocalProtocols are the Troupe side of BenchmarkLocal on one node:
// "like-peer" counts Pings (with p) or answers each with a Pong (without);
// "like" Tells it burst.n Pings for each *burst, and plays a rally with it.
func likeLocalProtocols(b *testing.B, p *pacer) *actors.Ref {
	cl, err := cluster.Local(1)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cl.Stop() })
	n := cl.Nodes()[0]
	if err := n.Start(protocol("like-peer", func(ctx *actors.Context) error {
		pong := &pb.Pong{}
		actors.OnTell(ctx, func(ctx *actors.Context, _ *pb.Ping) error {
			if p != nil {
				p.hit()
				return nil
			}
			return ctx.Tell("like", pong)
		})
		return nil
	})); err != nil {
		b.Fatal(err)
	}
	if err := n.Start(protocol("like", func(ctx *actors.Context) error {
		ping := &pb.Ping{N: 1}
		var r *rally
		actors.OnTell(ctx, func(ctx *actors.Context, b *burst) error {
			for range b.n {
				if err := ctx.Tell("like-peer", ping); err != nil {
					return err
				}
			}
			return nil
		})
		actors.OnTell(ctx, func(ctx *actors.Context, m *rally) error {
			r = m
			return ctx.Tell("like-peer", ping)
		})
		actors.OnTell(ctx, func(ctx *actors.Context, _ *pb.Pong) error {
			if r.n--; r.n > 0 {
				return ctx.Tell("like-peer", ping)
			}
			close(r.done)
			return nil
		})
		return nil
	})); err != nil {
		b.Fatal(err)
	}
	ref, err := n.Ref("like")
	if err != nil {
		b.Fatal(err)
	}
	return &ref
}

// BenchmarkLocal is BenchmarkRemote between two actors on one node. raw:
// two bare protoactor actors on protoactor's default mailbox, ctx.Send
// (the round trip ctx.Request and ctx.Respond); troupe: two protocols,
// Context.Tell to an OnTell handler both ways.
func BenchmarkLocal(b *testing.B) {
	for _, s := range likeShapes {
		b.Run(s.name+"/raw", func(b *testing.B) {
			sys := quietSystem()
			defer sys.Shutdown()
			p := newPacer()
			peer := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &rawPaceSink{p} }))
			sender := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &rawSender{peer: peer, msg: pb.Ping{N: 1}} }))
			events := [likeWindow + 1]burst{}
			for i := range events {
				events[i].n = i
			}
			p.run(b, s.k, func(n int) { sys.Root.Send(sender, &events[n]) })
		})
		b.Run(s.name+"/troupe", func(b *testing.B) {
			p := newPacer()
			ref := likeLocalProtocols(b, p)
			events := [likeWindow + 1]burst{}
			for i := range events {
				events[i].n = i
			}
			p.run(b, s.k, func(n int) {
				if err := ref.Tell(&events[n]); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
	b.Run("roundtrip/raw", func(b *testing.B) {
		sys := quietSystem()
		defer sys.Shutdown()
		peer := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &rawPonger{} }))
		pinger := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &rawPinger{peer: peer, ping: pb.Ping{N: 1}} }))
		rallyRun(b, func(r *rally) { sys.Root.Send(pinger, r) })
	})
	b.Run("roundtrip/troupe", func(b *testing.B) {
		ref := likeLocalProtocols(b, nil)
		rallyRun(b, func(r *rally) {
			if err := ref.Tell(r); err != nil {
				b.Fatal(err)
			}
		})
	})
}

package actors_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/cluster"
	pb "github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/security"
)

// counted closes done when it has seen want messages.
type counted struct {
	seen, want atomic.Int64
	done       chan struct{}
}

func newCounted(want int) *counted {
	c := &counted{done: make(chan struct{})}
	c.want.Store(int64(want))
	return c
}

func (c *counted) hit() {
	if c.seen.Add(1) == c.want.Load() {
		close(c.done)
	}
}

func (c *counted) wait(b *testing.B) {
	select {
	case <-c.done:
	case <-time.After(time.Minute):
		b.Fatalf("only %d of %d messages arrived", c.seen.Load(), c.want.Load())
	}
}

// rawSink is a bare protoactor actor with a type switch.
type rawSink struct{ c *counted }

func (s *rawSink) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *pb.Ping:
		s.c.hit()
	}
}

// cpuMeter reports the process's CPU time (user and system, every
// goroutine) per operation as cpu-ns/op: on a machine with spare cores,
// wall time per operation hides the work of the pipeline's other stages.
type cpuMeter struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuMeter { return cpuMeter{processCPU()} }

func (m cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-m.start)/float64(b.N), "cpu-ns/op")
}

// stopRemote shuts a bare protoactor remote down. Its graceful stop can
// panic ("send on closed channel") when a peer's stream ends at the same
// moment; transport/remote handles that the same way.
func stopRemote(r *remote.Remote) {
	defer func() {
		if recover() != nil {
			r.Shutdown(false)
		}
	}()
	r.Shutdown(true)
}

func quietSystem() *actor.ActorSystem {
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
}

// sinkProtocol counts Pings arriving as commands (Tell) or network messages,
// and sends bursts of Pings when told: protobuf Pings, or structPings when
// plain is set.
type burst struct {
	to    actors.NodeName
	n     int
	plain bool
}

// structPing is pb.Ping as a registered struct: the same field, the same
// work, no protoc; its wire name is three bytes longer than
// troupe.examples.v1.Ping.
type structPing struct{ N uint64 }

var _ = pb.Register[structPing]("troupe.actorsbench.v1.Ping")

func sinkProtocol(c *counted) actors.Factory {
	return protocol("bench", func(ctx *actors.Context) error {
		actors.OnTell(ctx, func(*actors.Context, *pb.Ping) error { c.hit(); return nil })
		actors.OnMessage(ctx, func(*actors.Context, actors.NodeName, *pb.Ping) error { c.hit(); return nil })
		actors.OnMessage(ctx, func(*actors.Context, actors.NodeName, *structPing) error { c.hit(); return nil })
		actors.OnTell(ctx, func(ctx *actors.Context, b *burst) error {
			if b.plain {
				m := &structPing{N: 1}
				for range b.n {
					if err := ctx.Send(b.to, m); err != nil {
						return err
					}
				}
				return nil
			}
			m := &pb.Ping{N: 1}
			for range b.n {
				if err := ctx.Send(b.to, m); err != nil {
					return err
				}
			}
			return nil
		})
		return nil
	})
}

// BenchmarkLocalDelivery sends one message type to one actor on the same
// node: raw is a bare protoactor actor with a type switch, troupe the same
// message through a Ref's Tell (Node.Ref: Node.Tell without the lookup by
// name, checked against the types the protocol takes) and an OnTell
// handler (with its per-type counters and sampled latency histogram). Both
// use protoactor's default dispatcher; raw uses protoactor's default
// mailbox, troupe the mailbox every protocol runs on (actors/mailbox.go).
func BenchmarkLocalDelivery(b *testing.B) {
	msg := &pb.Ping{N: 1}
	b.Run("raw", func(b *testing.B) {
		sys := quietSystem()
		defer sys.Shutdown()
		c := newCounted(b.N)
		pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &rawSink{c} }))
		measure(b, c, func() {
			for range b.N {
				sys.Root.Send(pid, msg)
			}
		})
	})
	b.Run("troupe", func(b *testing.B) {
		cl, err := cluster.Local(1)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Stop()
		c := newCounted(b.N)
		n := cl.Nodes()[0]
		if err := n.Start(sinkProtocol(c)); err != nil {
			b.Fatal(err)
		}
		ref, err := n.Ref("bench")
		if err != nil {
			b.Fatal(err)
		}
		measure(b, c, func() {
			for range b.N {
				if err := ref.Tell(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkRemoteDelivery streams messages one way between two nodes on
// loopback gRPC: raw is protoactor remote to a bare actor, troupe is
// Context.Send between two protocols (encoding into the batch, byte and
// message accounting, handler dispatch), one handler run sending them all.
// The *-one-per-event variants send each message from a handler run of its
// own (raw: a bare actor relaying local messages), so that each travels in
// a batch of its own: the worst case of Troupe's batching. The
// troupe-struct variants send the same message as a registered struct
// (CBOR) instead of protobuf, over the same network, doing the same work.
func BenchmarkRemoteDelivery(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		sender, sink, c := rawRemote(b)
		msg := &pb.Ping{N: 1}
		measure(b, c, func() {
			for range b.N {
				sender.Root.Send(sink, msg)
			}
		})
	})
	for _, mode := range []string{"troupe", "troupe-mtls"} {
		b.Run(mode, func(b *testing.B) {
			cl, c := troupeRemote(b, mode == "troupe-mtls")
			measure(b, c, func() {
				if err := cl.Node("node-1").Tell("bench", &burst{to: "node-2", n: b.N}); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
	b.Run("troupe-struct", func(b *testing.B) {
		cl, c := troupeRemote(b, false)
		measure(b, c, func() {
			if err := cl.Node("node-1").Tell("bench", &burst{to: "node-2", n: b.N, plain: true}); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("raw-one-per-event", func(b *testing.B) {
		sender, sink, c := rawRemote(b)
		relay := sender.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
			if _, ok := ctx.Message().(*burst); ok {
				ctx.Send(sink, &pb.Ping{N: 1})
			}
		}))
		one := &burst{n: 1}
		measure(b, c, func() {
			for range b.N {
				sender.Root.Send(relay, one)
			}
		})
	})
	b.Run("troupe-one-per-event", func(b *testing.B) {
		cl, c := troupeRemote(b, false)
		ref, err := cl.Node("node-1").Ref("bench")
		if err != nil {
			b.Fatal(err)
		}
		one := &burst{to: "node-2", n: 1}
		measure(b, c, func() {
			for range b.N {
				if err := ref.Tell(one); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("troupe-struct-one-per-event", func(b *testing.B) {
		cl, c := troupeRemote(b, false)
		ref, err := cl.Node("node-1").Ref("bench")
		if err != nil {
			b.Fatal(err)
		}
		one := &burst{to: "node-2", n: 1, plain: true}
		measure(b, c, func() {
			for range b.N {
				if err := ref.Tell(one); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// echo is a request whose reply is its number.
type echo struct {
	actors.Returns[int]
	n int
}

// relay asks protocol "echo" n times, one request after the reply to the
// previous one, then closes done.
type relay struct {
	n    int
	done chan struct{}
}

// rawEcho answers every *echo with its number.
type rawEcho struct{}

func (rawEcho) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*echo); ok {
		ctx.Respond(m.n)
	}
}

// rawRelay is relay for bare actors: ctx.Request, the reply as a message.
type rawRelay struct {
	target *actor.PID
	left   int
	done   chan struct{}
	req    echo
}

func (r *rawRelay) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *relay:
		r.left, r.done = m.n, m.done
		ctx.Request(r.target, &r.req)
	case int:
		if r.left--; r.left > 0 {
			ctx.Request(r.target, &r.req)
			return
		}
		close(r.done)
	}
}

// BenchmarkRequestReply is one request and its reply within one node, one
// at a time: call is from outside the actors (raw: protoactor's
// RequestFuture and Result; troupe: actors.Call), request from one actor
// to another (raw: ctx.Request and ctx.Respond between bare actors;
// troupe: actors.Request from one protocol to an OnRequest handler of
// another, the reply a later event of the first).
func BenchmarkRequestReply(b *testing.B) {
	b.Run("call/raw", func(b *testing.B) {
		sys := quietSystem()
		defer sys.Shutdown()
		pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return rawEcho{} }))
		req := &echo{n: 1}
		b.ReportAllocs()
		b.ResetTimer()
		cpu := startCPU()
		for range b.N {
			v, err := sys.Root.RequestFuture(pid, req, time.Minute).Result()
			if err != nil || v.(int) != 1 {
				b.Fatal(v, err)
			}
		}
		cpu.report(b)
	})
	b.Run("call/troupe", func(b *testing.B) {
		n := echoNode(b)
		req := &echo{n: 1}
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		cpu := startCPU()
		for range b.N {
			v, err := actors.Call(ctx, n, "echo", req)
			if err != nil || v != 1 {
				b.Fatal(v, err)
			}
		}
		cpu.report(b)
	})
	b.Run("request/raw", func(b *testing.B) {
		sys := quietSystem()
		defer sys.Shutdown()
		target := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return rawEcho{} }))
		pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &rawRelay{target: target, req: echo{n: 1}} }))
		done := make(chan struct{})
		b.ReportAllocs()
		b.ResetTimer()
		cpu := startCPU()
		sys.Root.Send(pid, &relay{n: b.N, done: done})
		<-done
		cpu.report(b)
	})
	b.Run("request/troupe", func(b *testing.B) {
		n := echoNode(b)
		done := make(chan struct{})
		b.ReportAllocs()
		b.ResetTimer()
		cpu := startCPU()
		if err := n.Tell("relay", &relay{n: b.N, done: done}); err != nil {
			b.Fatal(err)
		}
		<-done
		cpu.report(b)
	})
}

// echoNode starts a node running "echo", which answers *echo, and
// "relay", which asks it in turn.
func echoNode(b *testing.B) *actors.Node {
	cl, err := cluster.Local(1)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cl.Stop() })
	n := cl.Nodes()[0]
	if err := n.Start(protocol("echo", func(ctx *actors.Context) error {
		actors.OnRequest(ctx, func(_ *actors.Context, e *echo) (int, error) { return e.n, nil })
		return nil
	})); err != nil {
		b.Fatal(err)
	}
	if err := n.Start(protocol("relay", func(ctx *actors.Context) error {
		var left int
		var done chan struct{}
		req := &echo{n: 1}
		var onReply func(ctx *actors.Context, v int, err error) error
		onReply = func(ctx *actors.Context, v int, err error) error {
			if err != nil {
				return err
			}
			if left--; left > 0 {
				return actors.Request(ctx, "echo", req, 0, onReply)
			}
			close(done)
			return nil
		}
		actors.OnTell(ctx, func(ctx *actors.Context, r *relay) error {
			left, done = r.n, r.done
			return actors.Request(ctx, "echo", req, 0, onReply)
		})
		return nil
	})); err != nil {
		b.Fatal(err)
	}
	return n
}

// measure times send and the arrival of every message, and reports
// allocations and CPU per message.
func measure(b *testing.B, c *counted, send func()) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	send()
	c.wait(b)
	cpu.report(b)
}

// rawRemote starts two bare protoactor systems with remote on loopback and
// a rawSink on the second; it returns the first, the sink and its counter.
func rawRemote(b *testing.B) (*actor.ActorSystem, *actor.PID, *counted) {
	sender, receiver := quietSystem(), quietSystem()
	rs := remote.NewRemote(sender, remote.Configure("127.0.0.1", 0))
	rr := remote.NewRemote(receiver, remote.Configure("127.0.0.1", 0))
	rs.Start()
	rr.Start()
	b.Cleanup(func() { stopRemote(rs); stopRemote(rr) })
	c := newCounted(b.N)
	if _, err := receiver.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &rawSink{c} }), "sink"); err != nil {
		b.Fatal(err)
	}
	return sender, actor.NewPID(receiver.Address(), "sink"), c
}

// troupeRemote starts two nodes on loopback, over mutual TLS when mtls is
// set, running sinkProtocol; it returns the cluster and the counter.
func troupeRemote(b *testing.B, mtls bool) (*cluster.Cluster, *counted) {
	opt := cluster.Remote()
	if mtls {
		ca, err := security.NewCA("bench CA", time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		opt = cluster.RemoteTLS(ca) // a certificate per node, as in a real cluster
	}
	cl, err := cluster.Local(2, opt)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cl.Stop() })
	c := newCounted(b.N)
	if err := cl.Start(sinkProtocol(c)); err != nil {
		b.Fatal(err)
	}
	return cl, c
}

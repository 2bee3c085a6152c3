package actors_test

import (
	"context"
	"errors"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	pb "github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport/sim"
)

const wait = 10 * time.Second

// probe is a local message whose handler closes done: once it ran, every
// message queued before it has been handled.
type probe struct{ done chan struct{} }

func flush(t *testing.T, n *actors.Node, protocol actors.ProtocolName) {
	t.Helper()
	p := &probe{done: make(chan struct{})}
	if err := n.Tell(protocol, p); err != nil {
		t.Fatal(err)
	}
	actortest.Receive(t, p.done, wait, "probe through "+string(protocol))
}

func onProbe(ctx *actors.Context) {
	actors.OnTell(ctx, func(_ *actors.Context, p *probe) error { close(p.done); return nil })
}

// fn adapts a name and an Init function into a Protocol.
type fn struct {
	name actors.ProtocolName
	init func(ctx *actors.Context) error
}

func (f *fn) Name() actors.ProtocolName      { return f.name }
func (f *fn) Init(ctx *actors.Context) error { onProbe(ctx); return f.init(ctx) }

func protocol(name actors.ProtocolName, init func(ctx *actors.Context) error) actors.Factory {
	return func() actors.Protocol { return &fn{name: name, init: init} }
}

func singleNode(t *testing.T, tweak func(*actors.Config)) *actors.Node {
	t.Helper()
	c := clustertest.NewCluster(t, 1, cluster.NodeConfig(func(_ int, cfg *actors.Config) {
		if tweak != nil {
			tweak(cfg)
		}
	}))
	return c.Nodes()[0]
}

type work struct{ actors.Returns[int] }
type tick struct{}

func TestHandlersNeverRunConcurrently(t *testing.T) {
	actortest.Virtual(t, testHandlersNeverRunConcurrently)
}

func testHandlersNeverRunConcurrently(t *testing.T) {
	c := clustertest.NewCluster(t, 2)
	var inside, overlaps, handled atomic.Int64
	enter := func() {
		if inside.Add(1) != 1 {
			overlaps.Add(1)
		}
		for range 20 {
			runtime.Gosched()
		}
		inside.Add(-1)
		handled.Add(1)
	}
	type fire struct{ n uint64 }
	err := c.Start(protocol("serial", func(ctx *actors.Context) error {
		actors.OnTell(ctx, func(*actors.Context, *work) error { enter(); return nil })
		actors.OnMessage(ctx, func(*actors.Context, actors.NodeName, *pb.Ping) error { enter(); return nil })
		actors.OnTimer(ctx, func(*actors.Context, tick) error { enter(); return nil })
		actors.OnRequest(ctx, func(*actors.Context, *work) (int, error) { enter(); return 1, nil })
		actors.OnTell(ctx, func(ctx *actors.Context, f *fire) error {
			for i := range f.n {
				if err := ctx.Send("node-1", &pb.Ping{N: i}); err != nil {
					return err
				}
			}
			return nil
		})
		if ctx.Node() == "node-1" {
			ctx.Every(time.Millisecond, tick{})
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	n1, n2 := c.Node("node-1"), c.Node("node-2")
	if err := n2.Tell("serial", &fire{n: 500}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 500 {
				_ = n1.Tell("serial", &work{})
			}
		}()
		go func() {
			defer wg.Done()
			for range 50 {
				if _, err := actors.Call(context.Background(), n1, "serial", &work{}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	// 2000 tells + 200 requests + 500 pings, plus timer ticks.
	actortest.Eventually(t, wait, "every event handled", func() bool { return handled.Load() >= 2700 })
	if overlaps.Load() != 0 {
		t.Fatalf("%d handler runs overlapped another", overlaps.Load())
	}
}

func TestCancelledTimerNeverFires(t *testing.T) { actortest.Virtual(t, testCancelledTimerNeverFires) }

func testCancelledTimerNeverFires(t *testing.T) {
	clock := actortest.NewManualClock()
	n := singleNode(t, func(c *actors.Config) { c.Clock = clock })
	type block struct{ ready, release chan struct{} }
	var fired, periodic atomic.Int64
	var cancelled atomic.Bool
	err := n.Start(protocol("timers", func(ctx *actors.Context) error {
		id := ctx.After(10*time.Millisecond, tick{})
		actors.OnTimer(ctx, func(*actors.Context, tick) error { fired.Add(1); return nil })
		actors.OnTell(ctx, func(ctx *actors.Context, b *block) error {
			close(b.ready)
			<-b.release // the timer's message is queued behind this handler now
			cancelled.Store(ctx.Cancel(id))
			return nil
		})
		type every struct{}
		var pid actors.TimerID
		pid = ctx.Every(time.Second, every{})
		actors.OnTimer(ctx, func(ctx *actors.Context, _ every) error {
			if periodic.Add(1) == 3 {
				ctx.Cancel(pid)
			}
			return nil
		})
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	b := &block{ready: make(chan struct{}), release: make(chan struct{})}
	if err := n.Tell("timers", b); err != nil {
		t.Fatal(err)
	}
	actortest.Receive(t, b.ready, wait, "blocking handler")
	clock.Advance(10 * time.Millisecond) // fires: the timer message is queued
	if d := n.Stats().Protocols["timers"].MailboxDepth; d != 1 {
		t.Fatalf("mailbox depth %d, want the timer's message queued", d)
	}
	close(b.release)
	flush(t, n, "timers")
	if !cancelled.Load() {
		t.Fatal("Cancel reported the timer was no longer pending")
	}
	if fired.Load() != 0 {
		t.Fatalf("a cancelled timer fired %d times", fired.Load())
	}
	for range 5 {
		clock.Advance(time.Second)
		flush(t, n, "timers")
	}
	if got := periodic.Load(); got != 3 {
		t.Fatalf("periodic timer fired %d times; it cancels itself on the 3rd", got)
	}
	// The firings handled are counted apart from the messages (telemetry
	// shows them apart): 3 periodic ones; the cancelled one never ran.
	st := n.Stats().Protocols["timers"]
	if st.Timers != 3 || st.Total().MsgsIn < 3+1 {
		t.Fatalf("Timers = %d, MsgsIn = %d; want 3 timer firings, and the block message besides them", st.Timers, st.Total().MsgsIn)
	}
}

func TestRequestReplyAndTimeoutAsEvents(t *testing.T) {
	actortest.Virtual(t, testRequestReplyAndTimeoutAsEvents)
}

func testRequestReplyAndTimeoutAsEvents(t *testing.T) {
	n := singleNode(t, nil)
	type slowReq struct{ actors.Returns[string] }
	type fastReq struct {
		actors.Returns[string]
		x int
	}
	type ask struct{ req actors.Asks[string] }
	type result struct {
		rep string
		err error
	}
	release := make(chan struct{})
	results := make(chan result, 10)
	if err := n.Start(protocol("slow", func(ctx *actors.Context) error {
		actors.OnRequest(ctx, func(*actors.Context, *slowReq) (string, error) { <-release; return "late", nil })
		actors.OnRequest(ctx, func(_ *actors.Context, r *fastReq) (string, error) {
			if r.x < 0 {
				return "", errors.New("x must not be negative")
			}
			return strings.Repeat("x", r.x), nil
		})
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(protocol("asker", func(ctx *actors.Context) error {
		actors.OnTell(ctx, func(ctx *actors.Context, a *ask) error {
			return actors.Request(ctx, "slow", a.req, 50*time.Millisecond, func(_ *actors.Context, rep string, err error) error {
				results <- result{rep, err}
				return nil
			})
		})
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	tell := func(req actors.Asks[string]) result {
		t.Helper()
		if err := n.Tell("asker", &ask{req}); err != nil {
			t.Fatal(err)
		}
		return actortest.Receive(t, results, wait, "reply event")
	}
	if r := tell(&fastReq{x: 3}); r.err != nil || r.rep != "xxx" {
		t.Fatalf("reply %+v, want xxx", r)
	}
	if r := tell(&fastReq{x: -1}); r.err == nil || !strings.Contains(r.err.Error(), "must not be negative") {
		t.Fatalf("handler error not passed on as the reply: %+v", r)
	}
	if r := tell(struct {
		actors.Returns[string]
		unregistered int
	}{}); !errors.Is(r.err, actors.ErrNoHandler) {
		t.Fatalf("request of an unhandled type: %+v, want ErrNoHandler", r)
	}
	if r := tell(&slowReq{}); !errors.Is(r.err, actors.ErrTimeout) || !strings.Contains(r.err.Error(), "after 50ms") {
		t.Fatalf("slow request: %+v, want ErrTimeout after 50ms", r)
	}
	close(release)
	if _, err := actors.Call(context.Background(), n, "slow", &fastReq{x: 1}); err != nil {
		t.Fatal(err) // the late reply is in asker's mailbox now
	}
	flush(t, n, "asker")
	select {
	case r := <-results:
		t.Fatalf("the late reply reached the callback after its timeout: %+v", r)
	default:
	}
	if _, err := actors.Call(context.Background(), n, "nobody", &fastReq{}); !errors.Is(err, actors.ErrUnknownProtocol) {
		t.Fatalf("Call to an unknown protocol: %v", err)
	}
}

type counter struct {
	inits *atomic.Int64
	n     int
}

type incr struct{}
type boom struct{}
type fail struct{}
type get struct{ actors.Returns[int] }

func (c *counter) Name() actors.ProtocolName { return "counter" }
func (c *counter) Init(ctx *actors.Context) error {
	c.inits.Add(1)
	onProbe(ctx)
	actors.OnTell(ctx, func(*actors.Context, incr) error { c.n++; return nil })
	actors.OnTell(ctx, func(*actors.Context, boom) error { panic("boom") })
	actors.OnTell(ctx, func(*actors.Context, fail) error { return errors.New("disk on fire") })
	actors.OnRequest(ctx, func(*actors.Context, get) (int, error) { return c.n, nil })
	return nil
}

func TestPanicRestartsWithFreshInit(t *testing.T) {
	actortest.Virtual(t, testPanicRestartsWithFreshInit)
}

func testPanicRestartsWithFreshInit(t *testing.T) {
	n := singleNode(t, nil)
	var inits atomic.Int64
	restarts := make(chan *actors.ProtocolRestarted, 10)
	cancel, err := actors.Observe(n, func(e *actors.ProtocolRestarted) { restarts <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	if err := n.Start(func() actors.Protocol { return &counter{inits: &inits} }); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_ = n.Tell("counter", incr{})
	}
	if v, err := actors.Call(context.Background(), n, "counter", get{}); err != nil || v != 3 {
		t.Fatalf("count %d, %v; want 3", v, err)
	}
	_ = n.Tell("counter", boom{})
	ev := actortest.Receive(t, restarts, wait, "restart event")
	if ev.Protocol != "counter" || ev.Reason != "boom" || ev.Restarts != 1 {
		t.Fatalf("restart event %+v", ev)
	}
	var v int
	actortest.Eventually(t, wait, "restarted protocol answers", func() bool {
		v, err = actors.Call(context.Background(), n, "counter", get{})
		return err == nil
	})
	if v != 0 || inits.Load() != 2 {
		t.Fatalf("after a restart: count %d (want 0, fresh state), %d Inits (want 2)", v, inits.Load())
	}
	_ = n.Tell("counter", fail{})
	ev = actortest.Receive(t, restarts, wait, "restart after an error")
	if !strings.Contains(ev.Reason, "disk on fire") || ev.Restarts != 2 {
		t.Fatalf("restart event %+v", ev)
	}
	actortest.Eventually(t, wait, "second restart", func() bool { return inits.Load() == 3 })
	if s := n.Stats().Protocols["counter"]; s.Restarts != 2 || s.Stopped {
		t.Fatalf("stats %+v, want 2 restarts, running", s)
	}
}

func TestTooManyRestartsStopTheProtocol(t *testing.T) {
	actortest.Virtual(t, testTooManyRestartsStopTheProtocol)
}

func testTooManyRestartsStopTheProtocol(t *testing.T) {
	n := singleNode(t, func(c *actors.Config) {
		c.Supervision = actors.SupervisionConfig{MaxRestarts: 2, Window: time.Minute, Backoff: time.Millisecond, MaxBackoff: time.Millisecond}
	})
	stopped := make(chan *actors.ProtocolStopped, 1)
	cancel, _ := actors.Observe(n, func(e *actors.ProtocolStopped) { stopped <- e })
	defer cancel()
	var inits atomic.Int64
	if err := n.Start(func() actors.Protocol { return &counter{inits: &inits} }); err != nil {
		t.Fatal(err)
	}
	ref, err := n.Ref("counter")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_ = ref.Tell(boom{})
	}
	ev := actortest.Receive(t, stopped, wait, "stop event")
	if ev.Failures != 3 || ev.Protocol != "counter" {
		t.Fatalf("stop event %+v", ev)
	}
	if s := n.Stats().Protocols["counter"]; !s.Stopped || s.Restarts != 2 {
		t.Fatalf("stats %+v, want stopped after 2 restarts", s)
	}
	if err := n.Tell("counter", incr{}); !errors.Is(err, actors.ErrProtocolStopped) {
		t.Fatalf("Tell to a stopped protocol: %v", err)
	}
	if err := ref.Tell(incr{}); !errors.Is(err, actors.ErrProtocolStopped) {
		t.Fatalf("Ref.Tell to a stopped protocol: %v", err)
	}
	if _, err := n.Ref("counter"); !errors.Is(err, actors.ErrProtocolStopped) {
		t.Fatalf("Ref of a stopped protocol: %v", err)
	}
}

func TestRefTellsLikeNodeTell(t *testing.T) { actortest.Virtual(t, testRefTellsLikeNodeTell) }

func testRefTellsLikeNodeTell(t *testing.T) {
	n := singleNode(t, nil)
	var inits atomic.Int64
	if err := n.Start(func() actors.Protocol { return &counter{inits: &inits} }); err != nil {
		t.Fatal(err)
	}
	ref, err := n.Ref("counter")
	if err != nil || ref.Protocol() != "counter" {
		t.Fatalf("Ref: %v, %v", ref.Protocol(), err)
	}
	for range 5 {
		if err := ref.Tell(incr{}); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := actors.Call(context.Background(), n, "counter", get{}); err != nil || v != 5 {
		t.Fatalf("count %d, %v; want 5", v, err)
	}
	if got := n.Stats().Protocols["counter"].Types[reflect.TypeFor[incr]().String()].MsgsIn; got != 5 {
		t.Errorf("MsgsIn of incr %d, want 5", got)
	}
	if _, err := n.Ref("nobody"); !errors.Is(err, actors.ErrUnknownProtocol) {
		t.Errorf("Ref of an unknown protocol: %v", err)
	}
	if err := (actors.Ref{}).Tell(incr{}); !errors.Is(err, actors.ErrUnknownProtocol) {
		t.Errorf("zero Ref: %v", err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ref.Tell(incr{}); !errors.Is(err, actors.ErrNodeStopped) {
		t.Errorf("Ref.Tell after Stop: %v", err)
	}
}

// recorder keeps what each node's "rel" protocol received, per sender.
type recorder struct {
	mu  sync.Mutex
	got map[string][]uint64 // "to<-from" → payload numbers in arrival order
}

func (r *recorder) add(to, from actors.NodeName, n uint64) {
	k := string(to) + "<-" + string(from)
	r.mu.Lock()
	r.got[k] = append(r.got[k], n)
	r.mu.Unlock()
}

func (r *recorder) of(to, from actors.NodeName) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.got[string(to)+"<-"+string(from)]...)
}

type sendN struct {
	to       []actors.NodeName
	from, n  uint64
	reliable bool
}

func relProtocol(rec *recorder) actors.Factory {
	return protocol("rel", func(ctx *actors.Context) error {
		actors.OnMessage(ctx, func(ctx *actors.Context, from actors.NodeName, m *pb.Ping) error {
			rec.add(ctx.Node(), from, m.N)
			return nil
		})
		actors.OnTell(ctx, func(ctx *actors.Context, s *sendN) error {
			for i := s.from; i < s.from+s.n; i++ {
				for _, to := range s.to {
					send := ctx.Send
					if s.reliable {
						send = ctx.SendReliable
					}
					if err := send(to, &pb.Ping{N: i}); err != nil {
						return err
					}
				}
			}
			return nil
		})
		return nil
	})
}

func TestReliableExactlyOnceInOrderUnderFaults(t *testing.T) {
	actortest.Virtual(t, testReliableExactlyOnceInOrderUnderFaults)
}

func testReliableExactlyOnceInOrderUnderFaults(t *testing.T) {
	c := clustertest.NewCluster(t, 3, cluster.Sim(sim.Config{Seed: 42, Faults: sim.Faults{
		Loss: 0.3, Duplicate: 0.1, Reorder: 0.2, Latency: time.Millisecond, Jitter: 2 * time.Millisecond,
	}}), cluster.NodeConfig(func(_ int, cfg *actors.Config) {
		cfg.Reliable = actors.ReliableConfig{RTO: 20 * time.Millisecond, MaxRTO: 200 * time.Millisecond, MaxInFlight: 4096, RecvWindow: 4096}
	}))
	rec := &recorder{got: map[string][]uint64{}}
	if err := c.Start(relProtocol(rec)); err != nil {
		t.Fatal(err)
	}
	const n = 500
	_ = c.Node("node-1").Tell("rel", &sendN{to: []actors.NodeName{"node-2", "node-3"}, from: 1, n: n, reliable: true})
	_ = c.Node("node-2").Tell("rel", &sendN{to: []actors.NodeName{"node-1"}, from: 1, n: n, reliable: true})
	streams := [][2]actors.NodeName{{"node-2", "node-1"}, {"node-3", "node-1"}, {"node-1", "node-2"}}
	actortest.Eventually(t, 30*time.Second, "every reliable message delivered", func() bool {
		for _, s := range streams {
			if len(rec.of(s[0], s[1])) < n {
				return false
			}
		}
		return true
	})
	// Let retransmissions and duplicates still in flight arrive, then check
	// that none of them was delivered twice.
	for _, node := range c.Nodes() {
		flush(t, node, "rel")
	}
	for _, s := range streams {
		got := rec.of(s[0], s[1])
		if len(got) != n {
			t.Fatalf("%s received %d messages from %s, want exactly %d", s[0], len(got), s[1], n)
		}
		for i, v := range got {
			if v != uint64(i+1) {
				t.Fatalf("%s from %s: message %d is %d; want 1..%d in order", s[0], s[1], i, v, n)
			}
		}
	}
	tot := c.Hub.Stats().Total(sim.Protocol("rel"))
	if tot.Lost == 0 || tot.Duplicated == 0 || tot.Reordered == 0 {
		t.Fatalf("the faults did not happen: %+v", tot)
	}
	t.Logf("hub: %+v", tot)
}

func TestPartitionBlocksTrafficAndHealingResumesIt(t *testing.T) {
	actortest.Virtual(t, testPartitionBlocksTrafficAndHealingResumesIt)
}

func testPartitionBlocksTrafficAndHealingResumesIt(t *testing.T) {
	c := clustertest.NewCluster(t, 3, cluster.NodeConfig(func(_ int, cfg *actors.Config) {
		cfg.Reliable = actors.ReliableConfig{RTO: 10 * time.Millisecond, MaxRTO: 50 * time.Millisecond, MaxInFlight: 100, RecvWindow: 100}
	}))
	rec := &recorder{got: map[string][]uint64{}}
	if err := c.Start(relProtocol(rec)); err != nil {
		t.Fatal(err)
	}
	n1 := c.Node("node-1")
	c.Hub.Partition([]string{"node-1"}, []string{"node-2", "node-3"})
	_ = n1.Tell("rel", &sendN{to: []actors.NodeName{"node-2"}, from: 1, n: 10})                   // best effort
	_ = n1.Tell("rel", &sendN{to: []actors.NodeName{"node-2"}, from: 100, n: 10, reliable: true}) // reliable
	flush(t, n1, "rel")
	actortest.Eventually(t, wait, "retransmissions blocked too", func() bool {
		return c.Hub.Stats().Total(sim.From("node-1")).Blocked > 20
	})
	flush(t, c.Node("node-2"), "rel")
	if got := rec.of("node-2", "node-1"); len(got) != 0 {
		t.Fatalf("node-2 received %v across the partition", got)
	}
	c.Hub.Heal()
	actortest.Eventually(t, wait, "reliable messages delivered after healing", func() bool {
		return len(rec.of("node-2", "node-1")) == 10
	})
	_ = n1.Tell("rel", &sendN{to: []actors.NodeName{"node-2"}, from: 200, n: 1})
	actortest.Eventually(t, wait, "best-effort traffic resumes", func() bool {
		return len(rec.of("node-2", "node-1")) == 11
	})
	got := rec.of("node-2", "node-1")
	for i, v := range got[:10] {
		if v != uint64(100+i) {
			t.Fatalf("after healing node-2 got %v; want 100..109 (best-effort 1..10 were lost to the partition), then 200", got)
		}
	}
}

// A goroutine a protocol starts in Init may Post to it through Context.Ref
// at once, while Node.Start has not returned: the post reaches its OnPost
// handler (and, under -race, the Ref reads nothing Start writes).
func TestRefFromInitReachesTheProtocol(t *testing.T) {
	actortest.Virtual(t, testRefFromInitReachesTheProtocol)
}

func testRefFromInitReachesTheProtocol(t *testing.T) {
	n := singleNode(t, nil)
	got := make(chan struct{})
	err := n.Start(protocol("early", func(ctx *actors.Context) error {
		actors.OnPost(ctx, func(*actors.Context, incr) error { close(got); return nil })
		ref := ctx.Ref()
		go func() {
			if err := ref.Post(incr{}); err != nil {
				t.Errorf("Post from the protocol's goroutine: %v", err)
			}
		}()
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	actortest.Receive(t, got, wait, "a Post sent during Init")
}

// TestSendsLeaveWhenTheHandlerReturnsOrFlushes: on the remote network what
// a handler sends waits for the handler to return, unless it flushes; the
// messages of one handler to one node arrive in order either way.
func TestSendsLeaveWhenTheHandlerReturnsOrFlushes(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	got := make(chan uint64, 100)
	heard := make(chan struct{}, 3) // one per message node-2 handled
	arrived := make(chan bool, 1)   // whether one arrived while the handler waited
	type sendThenWait struct{ flush bool }
	c := clustertest.NewCluster(t, 2, cluster.Remote())
	if err := c.Start(protocol("flush", func(ctx *actors.Context) error {
		actors.OnMessage(ctx, func(_ *actors.Context, _ actors.NodeName, m *pb.Ping) error {
			got <- m.N
			heard <- struct{}{}
			return nil
		})
		actors.OnTell(ctx, func(ctx *actors.Context, s sendThenWait) error {
			for i := range 3 {
				if err := ctx.Send("node-2", &pb.Ping{N: uint64(i)}); err != nil {
					return err
				}
			}
			wait := 200 * time.Millisecond // nothing can arrive: the messages have not left
			if s.flush {
				ctx.Flush()
				wait = 10 * time.Second
			}
			// Wait, in the handler as only a test may, for the first message.
			select {
			case <-heard:
				arrived <- true
			case <-time.After(wait):
				arrived <- false
			}
			return nil
		})
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	for _, flush := range []bool{false, true} {
		if err := c.Node("node-1").Tell("flush", sendThenWait{flush}); err != nil {
			t.Fatal(err)
		}
		during := <-arrived
		if during != flush {
			t.Errorf("flush %v: the first message arrived while the handler ran: %v", flush, during)
		}
		var order []uint64
		for range 3 {
			select {
			case n := <-got:
				order = append(order, n)
			case <-time.After(10 * time.Second):
				t.Fatalf("flush %v: only %v arrived", flush, order)
			}
		}
		if !slices.Equal(order, []uint64{0, 1, 2}) {
			t.Errorf("flush %v: arrived in order %v", flush, order)
		}
		rest := 3 // this round's signals the handler did not take
		if during {
			rest = 2
		}
		for range rest {
			<-heard
		}
	}
}

// TestAFailureMidBatchKeepsTheRest: five messages from one handler travel
// as one batch; the receiving handler fails on the third, the protocol
// restarts, and the two after it reach the next incarnation, in order.
func TestAFailureMidBatchKeepsTheRest(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	type sendFive struct{}
	got := make(chan uint64, 10)
	c := clustertest.NewCluster(t, 2, cluster.Remote())
	if err := c.Start(protocol("midbatch", func(ctx *actors.Context) error {
		actors.OnMessage(ctx, func(_ *actors.Context, _ actors.NodeName, m *pb.Ping) error {
			if m.N == 2 {
				return errors.New("refusing 2")
			}
			got <- m.N
			return nil
		})
		actors.OnTell(ctx, func(ctx *actors.Context, _ sendFive) error {
			for i := range 5 {
				if err := ctx.Send("node-2", &pb.Ping{N: uint64(i)}); err != nil {
					return err
				}
			}
			return nil
		})
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	if err := c.Node("node-1").Tell("midbatch", sendFive{}); err != nil {
		t.Fatal(err)
	}
	var order []uint64
	for range 4 {
		order = append(order, actortest.Receive(t, got, wait, "a message"))
	}
	if !slices.Equal(order, []uint64{0, 1, 3, 4}) {
		t.Errorf("handled %v, want [0 1 3 4]", order)
	}
	if s := c.Node("node-2").Stats().Protocols["midbatch"]; s.Restarts != 1 {
		t.Errorf("node-2 restarted the protocol %d times, want 1", s.Restarts)
	}
}

// TestUnseededNodesDrawDifferentNumbers: nodes created at one instant
// (here on virtual time, whose clock stands still) with no Seed draw
// different numbers from Context.Rand. A seed from the clock alone gave
// them all the same, so a protocol picking random peers picked the same
// ones on every node (found by examples/plumtree).
func TestUnseededNodesDrawDifferentNumbers(t *testing.T) {
	actortest.Virtual(t, func(t *testing.T) {
		hub, err := sim.New(sim.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer hub.Close()
		draws := make(chan uint64, 2)
		for _, name := range []actors.NodeName{"node-1", "node-2"} {
			n, err := actors.NewNode(actors.Config{Name: name, Network: hub})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Stop()
			if err := n.Start(protocol("draw", func(ctx *actors.Context) error {
				draws <- ctx.Rand().Uint64()
				return nil
			})); err != nil {
				t.Fatal(err)
			}
		}
		if a, b := <-draws, <-draws; a == b {
			t.Fatalf("two unseeded nodes drew the same first number %d", a)
		}
	})
}

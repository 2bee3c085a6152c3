package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/security"
	"github.com/troupe-dev/troupe/transport"
)

// Node hosts protocols: one supervised protoactor actor each, on one actor
// system, attached to one network under the node's name.
type Node struct {
	cfg      Config
	name     NodeName
	clock    Clock
	log      zerolog.Logger
	badInput *security.LogLimiter // a flood of bad input logs a few lines and a count of the rest
	system   *actor.ActorSystem
	endpoint transport.Endpoint
	sup      *supervisor
	// session is this incarnation's reliable-delivery session: its start
	// time, raised past what peers saw of an earlier incarnation when the
	// clock stepped back (bumpSession).
	session      atomic.Uint64
	startSession uint64 // the session at start

	mu        sync.Mutex
	hosts     atomic.Pointer[map[ProtocolName]*protocolHost] // copy on write
	order     []*protocolHost                                // start order
	observers map[*actor.PID]bool
	subs      atomic.Pointer[map[reflect.Type][]*actor.PID] // copy on write, under mu
	stopped   bool

	timerMu     sync.RWMutex
	timerClosed bool
	timerWG     sync.WaitGroup

	packets atomic.Pointer[transport.Packets] // SetPackets; nil without one

	unknownProtocol, rejected atomic.Int64
	born                      time.Time // wall clock, origin of monotonic
}

// NewNode creates a node and attaches it to its network. Zero fields of cfg
// take their defaults; the result is validated first.
func NewNode(cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:       cfg,
		name:      cfg.Name,
		clock:     cfg.Clock,
		observers: map[*actor.PID]bool{},
		born:      time.Now(),
	}
	n.log = cfg.Logger.With().Str("node", string(cfg.Name)).Logger()
	n.badInput = security.NewLogLimiter(n.log, badInputBurst, badInputPeriod)
	n.hosts.Store(&map[ProtocolName]*protocolHost{})
	n.subs.Store(&map[reflect.Type][]*actor.PID{})
	if n.cfg.Seed == 0 {
		// The clock and the node's name: the clock alone gave nodes
		// created at one instant (a cluster on virtual time, where the
		// clock stands still) the same numbers, so a protocol that picks
		// random peers picked the same ones on every node. On virtual
		// time the seed stays reproducible from run to run.
		n.cfg.Seed = uint64(n.clock.Now().UnixNano()) ^ fnv64(string(cfg.Name))
	}
	n.startSession = max(uint64(n.clock.Now().UnixNano()), 1)
	n.session.Store(n.startSession)
	n.system = cfg.System
	if n.system == nil {
		level, _ := zerolog.ParseLevel(cfg.ActorLogLevel)
		actorLog := n.log.With().Str("component", "protoactor").Logger().Level(level)
		opts := []actor.ConfigOption{
			actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
				return slog.New(protoactorLog{zerolog.NewSlogHandler(actorLog)})
			}),
			actor.WithDeadLetterRequestLogging(false),
		}
		if cfg.MetricProvider != nil {
			opts = append(opts, actor.WithMetricProviders(cfg.MetricProvider))
		}
		n.system = actor.NewActorSystem(opts...)
	}
	n.sup = &supervisor{node: n}
	ep, err := cfg.Network.Attach(transport.Attachment{
		Node:         string(cfg.Name),
		System:       n.system,
		Deliver:      n.deliver,
		DeliverBatch: n.deliverBatch,
		Reject:       n.reject,
	})
	if err != nil {
		n.shutdownSystem()
		n.badInput.Close()
		return nil, fmt.Errorf("actors: attaching node %s: %w", cfg.Name, err)
	}
	n.endpoint = ep
	n.log.Debug().Str("address", ep.Address()).Msg("node attached")
	return n, nil
}

// Name is the node's identity.
func (n *Node) Name() NodeName { return n.name }

// Address is where the network reaches this node.
func (n *Node) Address() string { return n.endpoint.Address() }

// Logger is the node's logger (with the "node" field).
func (n *Node) Logger() zerolog.Logger { return n.log }

// System is the node's protoactor actor system, for code that wants plain
// actors or protoactor's cluster beside the protocols.
func (n *Node) System() *actor.ActorSystem { return n.system }

// Start spawns a protocol and returns when its first Init has returned. It
// fails if the name is taken or invalid, or if Init fails (the protocol is
// then not started).
func (n *Node) Start(f Factory) error {
	p := f()
	name := p.Name()
	if err := transport.ValidateName("protocol", name); err != nil {
		return fmt.Errorf("actors: node %s: %w", n.name, err)
	}
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return fmt.Errorf("starting protocol %s: %w", name, ErrNodeStopped)
	}
	if _, ok := (*n.hosts.Load())[name]; ok || n.starting(name) {
		n.mu.Unlock()
		return fmt.Errorf("%w: %s on node %s", ErrProtocolExists, name, n.name)
	}
	h := newHost(n, name, f, p)
	n.order = append(n.order, h) // reserves the name
	n.mu.Unlock()

	props := actor.PropsFromProducer(func() actor.Actor { return h },
		actor.WithGuardian(n.sup),
		actor.WithMailbox(h.newMailbox))
	if n.cfg.Dispatcher != nil {
		props.Configure(actor.WithDispatcher(n.cfg.Dispatcher))
	}
	pid, err := n.system.Root.SpawnNamed(props, actorName(name))
	if err == nil {
		n.mu.Lock()
		h.pid = pid
		n.mu.Unlock()
		err = <-h.started
		if err != nil {
			_ = n.system.Root.StopFuture(pid).Wait()
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil || n.stopped {
		n.order = slices.DeleteFunc(n.order, func(x *protocolHost) bool { return x == h })
		if err == nil {
			_ = n.system.Root.StopFuture(pid).Wait()
			err = ErrNodeStopped
		}
		return fmt.Errorf("actors: starting protocol %s on node %s: %w", name, n.name, err)
	}
	next := maps.Clone(*n.hosts.Load())
	next[name] = h
	n.hosts.Store(&next)
	return nil
}

// starting reports whether a protocol of that name is between Start and its
// first Init. Caller holds mu.
func (n *Node) starting(name ProtocolName) bool {
	return slices.ContainsFunc(n.order, func(h *protocolHost) bool { return h.name == name })
}

// actorName is the protoactor name of a protocol's actor.
func actorName(protocol ProtocolName) string { return "protocol-" + string(protocol) }

func (n *Node) host(name ProtocolName) *protocolHost { return (*n.hosts.Load())[name] }

// Protocols lists the names of the running (or stopped-by-failure)
// protocols in start order.
func (n *Node) Protocols() []ProtocolName {
	n.mu.Lock()
	defer n.mu.Unlock()
	names := make([]ProtocolName, 0, len(n.order))
	for _, h := range n.order {
		names = append(names, h.name)
	}
	return names
}

// Tell delivers the command msg to one protocol, which handles it with its
// OnTell handler for msg's type. It fails at once with ErrNoHandler when
// the protocol has no OnTell handler for that type (its posts and the
// notifications it subscribes to cannot be told). Safe from any goroutine.
func (n *Node) Tell(protocol ProtocolName, msg any) error {
	h, err := n.target(protocol)
	if err != nil {
		return err
	}
	if err := h.accepts(msg, inputTell); err != nil {
		return err
	}
	h.enqueue(msg)
	return nil
}

// Publish publishes the notification msg on this node, as
// [Context.Notify] does from a protocol: every protocol with an
// OnNotification handler for msg's type, and every observer ([Observe]),
// gets it. It is for code outside the protocols (tests, tools) that stands
// in for a protocol's announcement. It returns how many subscribers it
// reached. msg is shared, not copied: do not change it afterwards.
func (n *Node) Publish(msg any) int { return n.publish(msg) }

// Ref is a handle on one protocol of a node, for code that sends it many
// messages: [Ref.Tell] skips the lookup by name that [Node.Tell] makes on
// every call. A Ref stays valid across the protocol's restarts; once the
// protocol or the node has stopped, its Tell fails. The zero Ref refers to
// no protocol. A Ref is a small value, safe to copy and to use from any
// goroutine. Only the protocol's own Ref, from [Context.Ref], may Post.
type Ref struct {
	h   *protocolHost
	own bool // from Context.Ref: the protocol's own, which may Post
}

// Ref returns a handle on a protocol of the node. It fails as [Node.Tell]
// does: for a protocol the node does not run, a stopped protocol or a
// stopped node.
func (n *Node) Ref(protocol ProtocolName) (Ref, error) {
	h, err := n.target(protocol)
	if err != nil {
		return Ref{}, err
	}
	return Ref{h: h}, nil
}

// Protocol is the name of the protocol r refers to ("" for the zero Ref).
func (r Ref) Protocol() ProtocolName {
	if r.h == nil {
		return ""
	}
	return r.h.name
}

// Tell delivers the command msg to r's protocol, which handles it with its
// OnTell handler for msg's type, as [Node.Tell] does. It fails with
// ErrNoHandler when the protocol has no OnTell handler for that type,
// ErrProtocolStopped once the protocol has stopped (too many restarts),
// ErrNodeStopped once the node has, and ErrUnknownProtocol for the zero
// Ref. Safe from any goroutine.
func (r Ref) Tell(msg any) error {
	h, err := r.live()
	if err != nil {
		return err
	}
	if err := h.accepts(msg, inputTell); err != nil {
		return err
	}
	h.post(msg)
	return nil
}

// Post hands msg to the OnPost handler of r's protocol for msg's type: how
// a goroutine the protocol owns reports back to it. Only the protocol's
// own Ref, from [Context.Ref], may Post; on a Ref from [Node.Ref] it fails
// with ErrNotOwner. It fails with ErrNoHandler when the protocol has no
// OnPost handler for msg's type, and as [Ref.Tell] does once the protocol
// or the node has stopped. Safe from any goroutine.
func (r Ref) Post(msg any) error {
	h, err := r.live()
	if err != nil {
		return err
	}
	if !r.own {
		return fmt.Errorf("%w: a Post of %s to protocol %s on node %s through a Ref from Node.Ref; a protocol posts through its own Ref (Context.Ref), others send it commands with Tell",
			ErrNotOwner, typeName(msg), h.name, h.node.name)
	}
	if err := h.accepts(msg, inputPost); err != nil {
		return err
	}
	h.post(msg)
	return nil
}

// live is r's protocol, or why nothing can be sent to it.
func (r Ref) live() (*protocolHost, error) {
	h := r.h
	if h == nil {
		return nil, fmt.Errorf("%w: the zero Ref", ErrUnknownProtocol)
	}
	if h.metrics.stopped.Load() {
		if h.node.isStopped() {
			return nil, fmt.Errorf("protocol %s: %w", h.name, ErrNodeStopped)
		}
		return nil, fmt.Errorf("%w: %s on node %s", ErrProtocolStopped, h.name, h.node.name)
	}
	return h, nil
}

func (n *Node) target(protocol ProtocolName) (*protocolHost, error) {
	h := n.host(protocol)
	switch {
	case h == nil && n.isStopped():
		return nil, fmt.Errorf("protocol %s: %w", protocol, ErrNodeStopped)
	case h == nil:
		return nil, fmt.Errorf("%w: %q on node %s (running: %v)", ErrUnknownProtocol, protocol, n.name, n.Protocols())
	case h.metrics.stopped.Load():
		return nil, fmt.Errorf("%w: %s on node %s", ErrProtocolStopped, protocol, n.name)
	}
	return h, nil
}

func (n *Node) isStopped() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stopped
}

// Call sends a request to a protocol of node n from outside any protocol
// (an HTTP handler, a test) and waits for the reply: until ctx's deadline
// when it has one (a deferred reply may take as long as the caller allows),
// Config.RequestTimeout otherwise, or until ctx is cancelled. The error
// wraps ErrTimeout when the wait ran out, ctx's error when it was
// cancelled.
func Call[Req Asks[Rep], Rep any](ctx context.Context, n *Node, protocol ProtocolName, req Req) (Rep, error) {
	var zero Rep
	h, err := n.target(protocol)
	if err != nil {
		return zero, err
	}
	timeout := n.cfg.RequestTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return zero, fmt.Errorf("request %T to protocol %s: %w", req, protocol, context.DeadlineExceeded)
	}
	f := actor.NewFuture(n.system, timeout)
	n.system.Root.Send(h.pid, &requestMsg{replyTo: f.PID(), body: req})
	type result struct {
		v   any
		err error
	}
	var res result
	if ctx.Done() == nil { // no cancellation to watch: wait on the future alone
		res.v, res.err = f.Result()
	} else {
		done := make(chan result, 1)
		go func() { v, err := f.Result(); done <- result{v, err} }()
		select {
		case res = <-done:
		case <-ctx.Done():
			if ctx.Err() == context.Canceled {
				return zero, fmt.Errorf("request %T to protocol %s on node %s: %w", req, protocol, n.name, ctx.Err())
			}
			res = <-done // the deadline: the future ends with it
		}
	}
	if res.err != nil {
		return zero, fmt.Errorf("%w: %T to protocol %s on node %s after %v", ErrTimeout, req, protocol, n.name, timeout.Round(time.Millisecond))
	}
	rep := res.v.(*replyMsg)
	if rep.err != nil {
		return zero, rep.err
	}
	v, ok := rep.body.(Rep)
	if !ok && rep.body != nil {
		return zero, fmt.Errorf("%w: %T to protocol %s answered %T, want %v", ErrReplyType, req, protocol, rep.body, reflect.TypeFor[Rep]())
	}
	return v, nil
}

// Observe calls fn with every notification of type T published on node n,
// one at a time, in an actor of its own: the way for code outside the
// protocols (tests, the HTTP API) to watch them. Cancel stops it.
func Observe[T any](n *Node, fn func(T)) (cancel func(), err error) {
	t := reflect.TypeFor[T]()
	if t.Kind() == reflect.Interface {
		return nil, fmt.Errorf("actors: Observe needs a concrete type, not the interface %v", t)
	}
	props := actor.PropsFromFunc(func(c actor.Context) {
		if v, ok := c.Message().(T); ok {
			fn(v)
		}
	})
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil, ErrNodeStopped
	}
	pid := n.system.Root.Spawn(props)
	n.observers[pid] = true
	n.subscribeLocked(t, pid)
	n.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			n.mu.Lock()
			n.unsubscribeLocked(pid)
			delete(n.observers, pid)
			n.mu.Unlock()
			_ = n.system.Root.StopFuture(pid).Wait()
		})
	}, nil
}

func (n *Node) subscribe(t reflect.Type, pid *actor.PID) {
	n.mu.Lock()
	n.subscribeLocked(t, pid)
	n.mu.Unlock()
}

func (n *Node) subscribeLocked(t reflect.Type, pid *actor.PID) {
	next := maps.Clone(*n.subs.Load())
	if !slices.ContainsFunc(next[t], pid.Equal) {
		next[t] = append(slices.Clip(next[t]), pid)
	}
	n.subs.Store(&next)
}

func (n *Node) unsubscribe(pid *actor.PID) {
	n.mu.Lock()
	n.unsubscribeLocked(pid)
	n.mu.Unlock()
}

func (n *Node) unsubscribeLocked(pid *actor.PID) {
	next := maps.Clone(*n.subs.Load())
	for t, pids := range next {
		if slices.ContainsFunc(pids, pid.Equal) {
			next[t] = slices.DeleteFunc(slices.Clone(pids), pid.Equal)
			if len(next[t]) == 0 {
				delete(next, t)
			}
		}
	}
	n.subs.Store(&next)
}

// publish sends a notification to every subscriber of its type.
func (n *Node) publish(msg any) int {
	pids := (*n.subs.Load())[reflect.TypeOf(msg)]
	for _, pid := range pids {
		n.system.Root.Send(pid, msg)
	}
	return len(pids)
}

// afterFunc runs f after d on the node's clock, unless the node has stopped;
// Stop waits for every f that has begun.
func (n *Node) afterFunc(d time.Duration, f func()) Timer {
	return n.clock.AfterFunc(d, func() {
		n.timerMu.RLock()
		if n.timerClosed {
			n.timerMu.RUnlock()
			return
		}
		n.timerWG.Add(1)
		n.timerMu.RUnlock()
		defer n.timerWG.Done()
		f()
	})
}

// monotonic reads the monotonic clock (as time since the node was made),
// for handler latencies: one clock read, where time.Now reads two clocks.
// Latency is measured on the machine's clock, not the node's Clock.
func (n *Node) monotonic() time.Duration { return time.Since(n.born) }

// newRand makes the seeded random source of one protocol.
func (n *Node) newRand(protocol ProtocolName) *rand.Rand {
	return rand.New(rand.NewPCG(n.cfg.Seed, fnv64(string(protocol))))
}

// fnv64 is the 64-bit FNV-1a hash of s.
func fnv64(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

// deliver is the network's callback: decode, then enqueue on the protocol's
// mailbox. Runs on network goroutines.
func (n *Node) deliver(env *messages.Envelope, size int) {
	h := n.inbox(ProtocolName(env.Protocol))
	if h == nil {
		n.unknownProtocol.Add(1)
		n.badInput.Warn(kindUnknownProtocol).Str("from", env.From).Str("protocol", env.Protocol).Str("type", env.Type).
			Msg(kindUnknownProtocol)
		return
	}
	if env.Kind == messages.Envelope_KIND_ACK {
		h.enqueue(&ackIn{from: env.From, session: env.Session, ack: env.Ack, peerSession: env.PeerSession, seenSession: env.SeenSession})
		return
	}
	// The payload is decoded by the protocol's actor, not here: this runs
	// on the network's reader goroutine, which every message of the node
	// passes through.
	h.enqueue(&inbound{env: env, size: size})
}

// inbox is where the network delivers to a protocol: its host, from the
// moment its actor runs. A protocol's first Init may send, and the answer
// may come back before Start has published the protocol (a peer answers
// within microseconds on the simulated network); it is queued behind Init
// in the mailbox, not dropped as for a protocol the node does not run.
func (n *Node) inbox(name ProtocolName) *protocolHost {
	if h := n.host(name); h != nil {
		return h
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range n.order {
		if h.name == name && h.inbox != nil {
			return h
		}
	}
	return nil
}

// listen records that h's actor runs: the network may deliver to it.
func (n *Node) listen(h *protocolHost) {
	n.mu.Lock()
	h.inbox = h.self
	n.mu.Unlock()
}

// deliverBatch takes a batch of envelopes for one protocol.
func (n *Node) deliverBatch(from, protocol string, envelopes []byte) {
	h := n.inbox(ProtocolName(protocol))
	if h == nil {
		n.unknownProtocol.Add(1)
		n.badInput.Warn(kindUnknownProtocol).Str("from", from).Str("protocol", protocol).
			Msg(kindUnknownProtocol)
		return
	}
	h.enqueue(&inboundBatch{from: NodeName(from), envelopes: envelopes})
}

// reject is the network's Reject callback: it counts an envelope the
// network refused. The network logs the refusal itself, rate-limited and
// with the peer's address (transport/remote), so the node does not log it
// again.
func (n *Node) reject(error) { n.rejected.Add(1) }

// refuse counts an entry of a batch that the node's own checks refused,
// and logs it (rate-limited).
func (n *Node) refuse(err error) {
	n.rejected.Add(1)
	n.badInput.Warn(kindRefusedEntry).Err(err).Msg(kindRefusedEntry)
}

// The warnings of bad input, each a fixed kind for badInput: of each, the
// first badInputBurst of a badInputPeriod are logged, then one line counts
// the rest (security.LogLimiter).
const (
	badInputBurst  = 10
	badInputPeriod = 10 * time.Second

	kindUnknownProtocol = "dropping a message for a protocol this node does not run"
	kindRefusedEntry    = "refusing an entry of a batch"
	kindUnknownType     = "dropping a message of a type this node does not know"
	kindMalformed       = "dropping a malformed message"
	kindUnhandled       = "dropping a message the protocol has no handler for"
	kindPanicked        = "refusing a message whose handler panicked"
)

// Stats snapshots the node's counters.
func (n *Node) Stats() NodeStats {
	s := NodeStats{Node: n.name, Protocols: map[ProtocolName]ProtocolStats{},
		UnknownProtocol: n.unknownProtocol.Load(), Rejected: n.rejected.Load()}
	n.mu.Lock()
	hosts := slices.Clone(n.order)
	n.mu.Unlock()
	for _, h := range hosts {
		s.Protocols[h.name] = h.metrics.snapshot(h.name, h.mailboxDepth())
	}
	return s
}

// shutdownSystem shuts the actor system down unless it was given
// (Config.System).
func (n *Node) shutdownSystem() {
	if n.cfg.System == nil {
		n.system.Shutdown()
	}
}

// Stop stops every protocol (last started first, each after its current
// handler returns), detaches from the network and shuts the actor system
// down. It returns when every goroutine the node owns has exited; calling it
// again does nothing.
func (n *Node) Stop() error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil
	}
	n.stopped = true
	type running struct {
		h   *protocolHost
		pid *actor.PID
	}
	var hosts []running
	for _, h := range n.order {
		if h.pid != nil {
			hosts = append(hosts, running{h, h.pid})
		}
	}
	observers := make([]*actor.PID, 0, len(n.observers))
	for pid := range n.observers {
		observers = append(observers, pid)
	}
	n.mu.Unlock()

	var errs []error
	for _, r := range slices.Backward(hosts) {
		if err := n.system.Root.StopFuture(r.pid).Wait(); err != nil {
			errs = append(errs, fmt.Errorf("stopping protocol %s: %w", r.h.name, err))
		}
		r.h.metrics.stopped.Store(true)
	}
	for _, pid := range observers {
		_ = n.system.Root.StopFuture(pid).Wait()
	}
	if err := n.endpoint.Close(); err != nil {
		errs = append(errs, err)
	}
	n.timerMu.Lock()
	n.timerClosed = true
	n.timerMu.Unlock()
	n.timerWG.Wait()
	n.shutdownSystem()
	n.badInput.Close() // reports the warnings held back
	n.log.Debug().Msg("node stopped")
	return errors.Join(errs...)
}

// bumpSession raises the node's session above seen, a session a peer holds
// for this node that is higher than the node's own: the clock stepped back
// across a restart. It returns the session now in force.
//
// The step above seen is drawn from this incarnation's start (up to 2³²
// ns): seen may be an old value a peer kept, which an earlier incarnation
// raised itself above with its own step; a fixed step would give this
// incarnation that earlier one's session, and its peers would take it for
// the earlier incarnation (found by the simulation: a stream stuck waiting
// for a sequence number the earlier incarnation had acknowledged).
func (n *Node) bumpSession(seen uint64) uint64 {
	step := 1 + (n.startSession*0x9E3779B97F4A7C15)>>32
	for {
		cur := n.session.Load()
		if cur > seen || n.session.CompareAndSwap(cur, seen+step) {
			return n.session.Load()
		}
	}
}

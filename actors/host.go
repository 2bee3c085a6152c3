package actors

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// protocolHost is the protoactor actor of one protocol. It lives as long as
// the protocol: the fields below survive supervised restarts, while each
// incarnation gets a fresh Protocol value and a fresh Context.
type protocolHost struct {
	node    *Node
	name    ProtocolName
	factory Factory
	first   Protocol // the value Start made, used by the first incarnation
	pid     *actor.PID
	self    *actor.PID // as seen by the actor itself
	inbox   *actor.PID // self, written under node.mu once the actor runs: where the network delivers before Start publishes the host
	log     zerolog.Logger
	rng     *rand.Rand
	metrics protocolMetrics
	mailbox atomic.Value // *mailbox, for its depth
	stopped bool         // protoactor stopped the actor: nothing more is handled

	started  chan error // the first Init's result
	everUp   bool
	ctx      *Context                    // the current incarnation
	initing  bool                        // the current incarnation's Init is running
	inputs   atomic.Pointer[localInputs] // local input types, for senders (local.go)
	failures []time.Time
	config   any // the last configuration accepted at run time, for later incarnations

	sampleEvery uint32 // measure one handler run in this many
	sampleTick  uint32

	nextTimer  TimerID
	nextReq    uint64
	hostTimers map[TimerID]*timer // runtime timers that outlive incarnations
	rel        reliable
	strm       streams                          // stream.go
	outbox     transport.Outbox                 // flushed after every event
	types      map[string]transport.PayloadType // payload types seen, by name: no registry lookup per message
	outTypes   typeTable[*typeMetrics]          // counters of the types it sent, by type word (statsOf)
	tellTo     []tellTarget                     // protocols it Tells (tellTarget)
	replyKinds typeTable[*replyKind]            // by request type (Request)
	arrived    Channel                          // of the network message being handled (Context.Arrived)
}

func newHost(n *Node, name ProtocolName, f Factory, first Protocol) *protocolHost {
	h := &protocolHost{
		node:        n,
		name:        name,
		factory:     f,
		first:       first,
		log:         n.log.With().Str("protocol", string(name)).Logger(),
		rng:         n.newRand(name),
		started:     make(chan error, 1),
		hostTimers:  map[TimerID]*timer{},
		sampleEvery: uint32(n.cfg.LatencySampleEvery),
		outbox:      n.endpoint.Outbox(string(name)),
		types:       map[string]transport.PayloadType{},
	}
	h.rel.init()
	return h
}

func (h *protocolHost) newMailbox() actor.Mailbox {
	mb := &mailbox{}
	if h.node.cfg.MetricProvider == nil {
		// protoactor times every message it hands to the actor when its
		// metrics are on; otherwise the mailbox hands Troupe's messages
		// to the host itself (see mailbox).
		mb.deliver = h.deliver
	}
	h.mailbox.Store(mb)
	return mb
}

func (h *protocolHost) mailboxDepth() int {
	if mb, ok := h.mailbox.Load().(*mailbox); ok {
		return mb.UserMessageCount()
	}
	return 0
}

// post enqueues a message on the protocol's own mailbox (enqueue). A
// goroutine the protocol starts in Init may post at once: the mailbox is
// made before the first Init, and before it enqueue sends to self, which
// the actor sets before its first Init (Start writes pid only when the
// spawn returns, maybe after Init began: a nil pid crashed the process).
func (h *protocolHost) post(msg any) { h.enqueue(msg) }

// enqueue appends msg to the protocol's mailbox: straight into Troupe's
// mailbox once protoactor made it (before the actor first runs), skipping
// protoactor's root context, process lookup and actor process (a fifth of
// a local Tell's CPU in a profile); through protoactor before. After the
// actor stopped, the host drops what still arrives, as protoactor would
// (as a dead letter).
func (h *protocolHost) enqueue(msg any) {
	if mb, ok := h.mailbox.Load().(*mailbox); ok {
		mb.PostUserMessage(msg)
		return
	}
	h.node.system.Root.Send(h.self, msg)
}

// Receive is the one entry point of every event: the mailbox calls it one
// message at a time. What a handler sends leaves when the event is handled
// (or earlier, when much is pending), a panic included.
func (h *protocolHost) Receive(ac actor.Context) {
	switch ac.Message().(type) {
	case *actor.Started:
		// Started comes again after every restart, while timer callbacks
		// of the host (retransmission ticks) may read self in post: write
		// it once, before any timer is armed.
		if h.self == nil {
			h.self = ac.Self()
			h.node.listen(h)
		}
	case *actor.Stopped:
		h.stopped = true
	}
	h.deliver(ac.Message())
}

// deliver handles one event. The mailbox calls it directly for the user
// messages it holds (mailbox.deliver), protoactor through Receive for the
// rest. After the actor stopped, protoactor drops what is still queued,
// and so does deliver.
func (h *protocolHost) deliver(msg any) {
	if h.stopped {
		return
	}
	defer h.outbox.Flush()
	switch m := msg.(type) {
	case *inboundBatch:
		h.onBatch(m)
	case *inbound:
		h.onInbound(m)
	case *timerFired:
		h.onTimer(m)
	case *requestMsg:
		h.onRequest(m)
	case *replyMsg:
		h.onReply(m)
	case *reconfigureMsg:
		h.onReconfigure(m)
	case *ackIn:
		h.rel.onAck(h, m)
	case *ackFlush:
		h.rel.flushAcks(h)
	case *actor.Started:
		h.begin()
	case *actor.Restarting:
		h.end()
	case *actor.Stopping:
		h.end()
		h.stopHostTimers()
	default:
		h.onLocal(m)
	}
}

// begin starts an incarnation: a fresh protocol value and Context, then Init.
func (h *protocolHost) begin() {
	p := h.first
	h.first = nil
	if p == nil {
		p = h.factory()
	}
	ctx := newContext(h, p)
	h.ctx = ctx
	h.strm.begin(h, ctx)
	h.initing = true
	err := p.Init(ctx)
	h.initing = false
	h.storeInputs()
	if err == nil {
		if err = h.reapplyConfig(); err != nil {
			err = fmt.Errorf("applying its run-time configuration again: %w", err)
		}
	}
	if !h.everUp {
		h.everUp = true
		h.started <- err
		if err != nil {
			return // Start stops the actor
		}
	} else if err != nil {
		panic(&HandlerError{Protocol: h.name, Type: "Init", Err: err})
	}
	h.log.Debug().Msg("protocol initialised")
	h.rel.drainAll(h)
}

// end closes the current incarnation: Stop hook, timers, pending requests,
// subscriptions.
func (h *protocolHost) end() {
	ctx := h.ctx
	if ctx == nil {
		return
	}
	h.ctx = nil
	if s, ok := ctx.proto.(Stopper); ok {
		func() {
			defer func() {
				if r := recover(); r != nil {
					h.log.Error().Interface("panic", r).Msg("protocol's Stop panicked")
				}
			}()
			s.Stop(ctx)
		}()
	}
	h.strm.end(h, ctx)
	for a := range ctx.answers { // what the Stop hook left unanswered
		_ = a.finish(nil, fmt.Errorf("%w: protocol %s on node %s restarted or stopped before answering %s", ErrUnanswered, h.name, h.node.name, a.what))
	}
	ctx.done.Store(true)
	for _, t := range ctx.timers {
		t.stop.Stop()
	}
	clear(ctx.timers)
	clear(ctx.pending)
	h.node.unsubscribe(h.self)
}

func (h *protocolHost) stopHostTimers() {
	for id, t := range h.hostTimers {
		t.stop.Stop()
		delete(h.hostTimers, id)
	}
}

// sample tells whether to time this handler run: reading the clock twice
// costs more than a whole local delivery, so one run in LatencySampleEvery
// is timed.
func (h *protocolHost) sample() bool {
	h.sampleTick++
	if h.sampleTick < h.sampleEvery {
		return false
	}
	h.sampleTick = 0
	return true
}

// run calls a handler, measures it, and turns a returned error into a
// failure for the supervisor.
func (h *protocolHost) run(e *entry, from NodeName, m any) {
	if err := h.call(e, from, m); err != nil {
		panic(&HandlerError{Protocol: h.name, Type: e.name, Err: err})
	}
}

func (h *protocolHost) call(e *entry, from NodeName, m any) error {
	if !h.sample() {
		return e.fn(h.ctx, from, m)
	}
	start := h.node.monotonic()
	err := e.fn(h.ctx, from, m)
	e.stats.latency.observe(h.node.monotonic() - start)
	return err
}

// runRemote runs the handler of a message from another node. A panic there
// is the message's fault as far as the runtime can tell (DESIGN §7: a
// handler never has to trust a remote message): the message is refused —
// counted, logged with its sender (rate-limited) — and the protocol goes on
// with its state, without a restart. A returned error is the protocol's own
// verdict and restarts it, as for any event.
func (h *protocolHost) runRemote(e *entry, from NodeName, m any) {
	var err error
	panicked := true
	func() {
		defer func() {
			if !panicked {
				return
			}
			r := recover()
			if r == nil {
				return // runtime.Goexit, not a panic: let the goroutine end
			}
			h.metrics.refused.Add(1)
			h.metrics.unhandled.Add(1)
			if ev := h.node.badInput.Warn(kindPanicked); ev != nil {
				ev.Discard() // logged at error level, with the stack
				h.node.log.Error().Str("protocol", string(h.name)).Str("from", string(from)).Str("type", e.name).
					Str("panic", fmt.Sprint(r)).Str("stack", string(debug.Stack())).
					Msgf("refusing a message from %s: protocol %s's handler of %s panicked on it; the protocol keeps running", from, h.name, e.name)
			}
		}()
		err = h.call(e, from, m)
		panicked = false
	}()
	if err != nil {
		panic(&HandlerError{Protocol: h.name, Type: e.name, Err: err})
	}
}

func (h *protocolHost) unhandled(what, typeName string, from NodeName) {
	h.metrics.unhandled.Add(1)
	ev := h.node.badInput.Warn(kindUnhandled).Str("type", typeName)
	if from != "" {
		ev = ev.Str("from", string(from))
	}
	ev.Msgf("dropping a %s: protocol %s has no handler for %s", what, h.name, typeName)
}

// onInbound handles a message from the network: best effort goes straight to
// its handler, reliable passes through the receive window first.
func (h *protocolHost) onInbound(m *inbound) {
	if m.env != nil && m.env.Seq != 0 {
		h.rel.receive(h, m)
		return
	}
	h.dispatch(m)
}

func (h *protocolHost) dispatch(m *inbound) {
	if h.ctx == nil {
		return
	}
	env := m.env
	msg, err := transport.UnmarshalPayload(env)
	if err != nil {
		h.metrics.unhandled.Add(1)
		h.node.badInput.Warn(kindMalformed).Err(err).Str("from", env.From).Msg(kindMalformed)
		return
	}
	h.handle(NodeName(env.From), msg, m.size, m.ch)
}

// onBatch handles the envelopes of a batch in order. When a handler fails,
// the envelopes after its message go back to the mailbox, for the next
// incarnation, as if each had come alone.
func (h *protocolHost) onBatch(b *inboundBatch) {
	rest := b.envelopes
	defer func() {
		if len(rest) > 0 {
			if r := recover(); r != nil {
				h.post(&inboundBatch{from: b.from, envelopes: rest})
				panic(r)
			}
		}
	}()
	for len(rest) > 0 {
		e, next, err := transport.NextEntry(rest)
		if err != nil {
			h.node.refuse(fmt.Errorf("node %s, protocol %s: a batch from %s: %w (dropping the rest of it)", h.node.name, h.name, b.from, err))
			return
		}
		rest = next
		if e.Env == nil {
			h.onMessage(b.from, e)
			continue
		}
		env := e.Env
		env.From, env.To, env.Protocol = string(b.from), string(h.node.name), string(h.name)
		if err := transport.Validate(env); err != nil {
			h.node.refuse(fmt.Errorf("node %s, protocol %s: %w", h.node.name, h.name, err))
			continue
		}
		if env.Kind == messages.Envelope_KIND_ACK {
			h.rel.onAck(h, &ackIn{from: env.From, session: env.Session, ack: env.Ack, peerSession: env.PeerSession, seenSession: env.SeenSession})
			continue
		}
		h.onInbound(&inbound{env: env, size: e.Size})
	}
}

// onMessage decodes and handles best-effort data from a batch.
func (h *protocolHost) onMessage(from NodeName, e transport.Entry) {
	if h.ctx == nil {
		return
	}
	t, ok := h.types[string(e.Type)]
	if !ok {
		name := string(e.Type)
		found, err := transport.FindType(name)
		if err != nil {
			h.metrics.unhandled.Add(1)
			h.node.badInput.Warn(kindUnknownType).Err(err).
				Str("from", string(from)).Str("protocol", string(h.name)).Msg(kindUnknownType)
			return
		}
		h.types[name], t = found, found
	}
	msg, err := t.Decode(e.Payload)
	if err != nil {
		h.metrics.unhandled.Add(1)
		h.node.badInput.Warn(kindMalformed).Err(err).
			Str("from", string(from)).Str("protocol", string(h.name)).Msg(kindMalformed)
		return
	}
	h.handle(from, msg, e.Size, Stream)
}

// handle runs the handler of a message from node from, which came by ch.
func (h *protocolHost) handle(from NodeName, msg any, size int, ch Channel) {
	e, _ := h.ctx.msgH.get(keyOf(msg))
	var stats *typeMetrics
	if e != nil {
		stats = e.stats
	} else {
		stats = h.metrics.typ(typeName(msg))
	}
	stats.msgsIn.Add(1)
	stats.bytesIn.Add(int64(size))
	cm := &h.metrics.channels[ch]
	cm.received.Add(1)
	cm.bytesIn.Add(int64(size))
	h.arrived = ch
	if e == nil {
		h.unhandled("message", typeName(msg), from)
		return
	}
	h.runRemote(e, from, msg)
}

// typeName names a message type in stats and logs: the protobuf full name
// for protobuf messages, the wire name for registered structs, the Go type
// otherwise.
func typeName(m any) string {
	if pm, ok := m.(proto.Message); ok {
		return string(pm.ProtoReflect().Descriptor().FullName())
	}
	if st, ok := messages.StructTypeOf(m); ok {
		return st.Name()
	}
	return fmt.Sprintf("%T", m)
}

func typeNameOf(t reflect.Type) string {
	if t.Implements(protoMessageType) {
		return typeName(reflect.Zero(t).Interface())
	}
	if st, ok := messages.StructTypeFor(t); ok {
		return st.Name()
	}
	return t.String()
}

var protoMessageType = reflect.TypeFor[proto.Message]()

// Runtime messages, all unexported so no protocol can forge one.
type (
	// inbound is a data envelope from the network; its payload is
	// decoded when it is dispatched.
	inbound struct {
		env  *messages.Envelope
		size int
		ch   Channel // Stream, or the packet service's channel it came by
	}
	// inboundBatch is the envelopes of a Batch: protocol on node from sent
	// them to this one.
	inboundBatch struct {
		from      NodeName
		envelopes []byte
	}
	ackIn struct {
		from        string
		session     uint64 // the stream's
		ack         uint64
		peerSession uint64 // the acking node's start time
		seenSession uint64 // set when the ack refuses a stale stream session
	}
	ackFlush   struct{}
	timerFired struct{ id TimerID }
	requestMsg struct {
		id      uint64
		replyTo *actor.PID
		from    *protocolHost // the asking protocol (Request), nil for Call: replies go straight to its mailbox
		body    any
	}
	replyMsg struct {
		id   uint64
		body any
		err  error
	}
)

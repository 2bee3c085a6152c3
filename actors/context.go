package actors

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/troupe-dev/troupe/messages"
)

// Context is a protocol's handle on the runtime during one incarnation. It
// is passed to Init and to every handler, and must only be used from them:
// it is not safe for concurrent use, and it is dead once the incarnation
// ends (after a restart, use the new one).
type Context struct {
	h     *protocolHost
	proto Protocol
	done  atomic.Bool // the incarnation ended: the Context is dead

	msgH    typeTable[*entry] // messages from the network, by payload type
	localH  typeTable[*entry] // local input: commands, posts, notifications (local.go)
	timerH  typeTable[*entry] // timer payloads
	reconfH typeTable[*entry] // run-time configurations
	reqH    typeTable[*reqEntry]
	timers  map[TimerID]*timer
	pending map[uint64]*pendingReq
	answers map[*answer]struct{} // requests to this protocol not answered yet

	deadlines     deadlines // of the pending requests (deadlines.go)
	deadlineTimer TimerID   // fires at deadlineAt; 0 when not armed
	deadlineAt    time.Time

	channel Channel // Send's (UseChannel)
}

func newContext(h *protocolHost, p Protocol) *Context {
	return &Context{
		h:       h,
		proto:   p,
		timers:  map[TimerID]*timer{},
		pending: map[uint64]*pendingReq{},
		answers: map[*answer]struct{}{},
	}
}

// dead reports whether the incarnation of c ended; if so it counts and
// logs the misuse op (ProtocolStats.Misused): a goroutine kept an old
// Context past a restart, or a handler of another incarnation's timer or
// reply outlived it.
func (c *Context) dead(op string) bool {
	if !c.done.Load() {
		return false
	}
	c.misuse(op)
	return true
}

func (c *Context) misuse(op string) {
	n := c.h.metrics.misused.Add(1)
	if n&(n-1) == 0 { // the 1st, 2nd, 4th, 8th... : a loop on a dead Context does not flood the log
		c.h.log.Error().Str("op", op).Int64("misuses", n).Msg("a dead Context was used: its incarnation ended (restart or stop); use the Context of the current incarnation")
	}
}

// errDead is the error of an operation on a dead Context.
func (c *Context) errDead(op string) error {
	return fmt.Errorf("%w: protocol %s on node %s: %s", ErrDeadContext, c.h.name, c.h.node.name, op)
}

// Node is the name of the node this protocol runs on.
func (c *Context) Node() NodeName { return c.h.node.name }

// Protocol is the protocol's name.
func (c *Context) Protocol() ProtocolName { return c.h.name }

// Now is the node clock's time. Use it instead of time.Now, so that a
// simulation can own time.
func (c *Context) Now() time.Time { return c.h.node.clock.Now() }

// Rand is the protocol's random source, seeded from the node's seed and the
// protocol's name. Use it instead of math/rand's globals.
func (c *Context) Rand() *rand.Rand { return c.h.rng }

// Ref is this protocol's own handle on itself, for the goroutines it owns:
// long work runs off the mailbox and reports back with [Ref.Post], which
// any goroutine may call. Unlike a Ref from [Node.Ref], it may Post; hand
// it to no one the protocol does not trust with its posts. The Ref
// outlives the incarnation (it follows restarts).
func (c *Context) Ref() Ref { return Ref{h: c.h, own: true} }

// Log is the protocol's logger, with "node" and "protocol" fields.
func (c *Context) Log() *zerolog.Logger { return &c.h.log }

// NodeStats snapshots the counters of this protocol's node (as
// [Node.Stats]), for protocols that report on the node, such as telemetry.
func (c *Context) NodeStats() NodeStats { return c.h.node.Stats() }

// Send sends m, best effort, to this protocol on node `to` (which may be
// this node): it may be lost, duplicated or reordered on the way. m is a
// protobuf message or a pointer to a struct registered with
// messages.Register. It fails at once for an unknown node, a message over
// the size limit, or any other m (messages.ErrNotRegistered).
// m is encoded at once: it may be changed or reused afterwards. What a
// handler sends leaves when the handler returns (see Node): on the remote
// network, what it sends one node travels as one message.
//
// Send uses the stream unless [Context.UseChannel] chose datagrams, when
// it sends as [Context.SendOn] does.
func (c *Context) Send(to NodeName, m any) error {
	if c.dead("Send") {
		return c.errDead("Send")
	}
	if c.channel != Stream {
		return c.sendPacket(c.channel, to, m)
	}
	return c.sendStream(to, m)
}

// sendStream sends m best effort on the stream and counts it.
func (c *Context) sendStream(to NodeName, m any) error {
	size, err := c.h.outbox.SendMessage(string(to), m)
	if err != nil {
		return fmt.Errorf("protocol %s sending %s: %w", c.h.name, typeName(m), err)
	}
	k := c.h.statsOf(m)
	k.msgsOut.Add(1)
	k.bytesOut.Add(int64(size))
	st := &c.h.metrics.channels[Stream]
	st.sent.Add(1)
	st.bytesOut.Add(int64(size))
	return nil
}

// Flush hands what this handler sent so far to the network now, rather
// than when it returns. For a handler that sends and then does slow work
// the receivers need not wait for: a Raft leader sends its appends, flushes,
// then writes its own log, so the followers write theirs meanwhile.
func (c *Context) Flush() { c.h.outbox.Flush() }

// SendReliable sends m to this protocol on node `to` with retransmission,
// acknowledgement and de-duplication: while both nodes live, it is handled
// exactly once, after every message this protocol sent reliably to `to`
// before it. m is what Send takes. It fails at once for an unknown node, a
// message over the size limit or of an unregistered type, or when
// ReliableConfig.MaxInFlight messages to `to` await acks.
func (c *Context) SendReliable(to NodeName, m any) error {
	if c.dead("SendReliable") {
		return c.errDead("SendReliable")
	}
	return c.h.rel.send(c.h, string(to), m)
}

// Notify publishes n to every protocol on this node that registered an
// OnNotification handler for n's type (this one included), and to
// observers ([Observe]). n is shared, not copied: do not change it afterwards. It
// returns how many subscribers it reached.
func (c *Context) Notify(n any) int {
	if c.dead("Notify") {
		return 0
	}
	k := c.h.statsOf(n)
	sent := c.h.node.publish(n)
	k.msgsOut.Add(int64(sent))
	return sent
}

// Tell delivers the command m to one protocol on this node (this one
// included), which handles it with its OnTell handler for m's type. It
// fails as [Node.Tell] does: with ErrNoHandler, at once, when the protocol
// has no OnTell handler for m's type.
func (c *Context) Tell(to ProtocolName, m any) error {
	if c.dead("Tell") {
		return c.errDead("Tell")
	}
	h, err := c.h.tellTarget(to)
	if err != nil {
		return err
	}
	if err := h.accepts(m, inputTell); err != nil {
		return err
	}
	h.enqueue(m)
	c.h.statsOf(m).msgsOut.Add(1)
	return nil
}

// tellTarget is the host of protocol `to` on this node, for Context.Tell:
// found by name once, then kept (a protocol Tells few others), and found
// again once it stopped, so that Tell fails as Node.Tell does. Only the
// protocol's actor calls it.
func (h *protocolHost) tellTarget(to ProtocolName) (*protocolHost, error) {
	for i := range h.tellTo {
		if t := &h.tellTo[i]; t.name == to {
			if !t.h.metrics.stopped.Load() {
				return t.h, nil
			}
			h.tellTo = slices.Delete(h.tellTo, i, i+1)
			break
		}
	}
	target, err := h.node.target(to)
	if err != nil {
		return nil, err
	}
	if len(h.tellTo) < maxTellTargets {
		h.tellTo = append(h.tellTo, tellTarget{name: to, h: target})
	}
	return target, nil
}

// tellTarget is one protocol a protocol Tells, with its host.
type tellTarget struct {
	name ProtocolName
	h    *protocolHost
}

// maxTellTargets bounds the protocols a host keeps for Context.Tell; more
// are looked up by name on every Tell.
const maxTellTargets = 16

// statsOf is the counters of m's type, for what the protocol sends. The
// type's name (through protobuf reflection) and counters (a sync.Map) are
// looked up once per type, then found by the type word. Only the
// protocol's actor calls it. A dynamicpb message names its type per value,
// so it is looked up every time.
func (h *protocolHost) statsOf(m any) *typeMetrics {
	k := keyOf(m)
	if s, ok := h.outTypes.get(k); ok {
		return s
	}
	s := h.metrics.typ(typeName(m))
	if _, dynamic := m.(*dynamicpb.Message); !dynamic {
		h.outTypes.set(k, s)
	}
	return s
}

// AckType is the name reliable-delivery acknowledgements are counted under
// in TypeStats.
const AckType = "ack"

// transmit hands an envelope to the network and counts it.
func (h *protocolHost) transmit(env *messages.Envelope) error {
	typ := env.Type
	if env.Kind == messages.Envelope_KIND_ACK {
		typ = AckType
	}
	size, err := h.outbox.Send(env)
	if err != nil {
		return fmt.Errorf("protocol %s sending %s: %w", h.name, typ, err)
	}
	k := h.metrics.typ(typ)
	k.msgsOut.Add(1)
	k.bytesOut.Add(int64(size))
	st := &h.metrics.channels[Stream]
	st.sent.Add(1)
	st.bytesOut.Add(int64(size))
	return nil
}

// entry is one registered handler, with the counters of its type.
type entry struct {
	name  string
	fn    func(ctx *Context, from NodeName, m any) error
	stats *typeMetrics
	kind  inputKind // of local input (localH); zero in the other tables
}

func (c *Context) newEntry(t reflect.Type, fn func(*Context, NodeName, any) error) *entry {
	name := typeNameOf(t)
	return &entry{name: name, fn: fn, stats: c.h.metrics.typ(name)}
}

func mustConcrete(what string, t reflect.Type) {
	if t.Kind() == reflect.Interface {
		panic(fmt.Sprintf("actors: %s needs a concrete message type, not the interface %v", what, t))
	}
}

// OnMessage registers the handler of messages of type M sent by this
// protocol on other nodes (or this one). M is a protobuf message or a
// pointer to a struct registered with messages.Register (for
// messages.Register[Ping], M is *Ping); any other M panics, saying which
// to use. from is the sender's node name. A later registration for the
// same type replaces the earlier one.
func OnMessage[M any](ctx *Context, h func(ctx *Context, from NodeName, m M) error) {
	t := reflect.TypeFor[M]()
	mustConcrete("OnMessage", t)
	mustWireType(t)
	ctx.msgH.set(keyFor[M](), ctx.newEntry(t, func(c *Context, from NodeName, m any) error { return h(c, from, m.(M)) }))
}

// mustWireType panics unless t can arrive from the network.
func mustWireType(t reflect.Type) {
	if t.Implements(protoMessageType) {
		return
	}
	st, ok := messages.StructTypeFor(t)
	if !ok {
		panic(fmt.Sprintf("actors: OnMessage[%v]: %v", t, messages.NotRegistered(t)))
	}
	if pt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(st.Name())); err == nil {
		panic(fmt.Sprintf("actors: OnMessage[%v]: its wire name %q is also the protobuf message %v's; rename one", t, st.Name(), reflect.TypeOf(pt.Zero().Interface())))
	}
}

// OnTimer registers the handler of timers whose payload has type T (see
// Context.After and Context.Every).
func OnTimer[T any](ctx *Context, h func(ctx *Context, t T) error) {
	t := reflect.TypeFor[T]()
	mustConcrete("OnTimer", t)
	ctx.timerH.set(keyFor[T](), ctx.newEntry(t, func(c *Context, _ NodeName, m any) error { return h(c, m.(T)) }))
}

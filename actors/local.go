package actors

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/asynkron/protoactor-go/actor"
)

// A protocol takes three kinds of local input, kept apart by type
// (docs/architecture.md, "Three kinds of local input"):
//
//   - commands sent to it by name ([Node.Tell], [Context.Tell], [Ref.Tell]),
//     handled by [OnTell];
//   - its own posts to itself ([Context.Post], [Ref.Post] on its own Ref),
//     handled by [OnPost], and private to it;
//   - notifications published on the node ([Context.Notify],
//     [Node.Publish], runtime events), handled by [OnNotification].
//
// A type is one kind of input to a protocol: registering it with two of
// these panics. A sender is told at once, with an error wrapping
// [ErrNoHandler], when the protocol has no handler of that kind for the type.

// inputKind is the kind of local input a type is to a protocol.
type inputKind uint8

const (
	inputTell         inputKind = iota + 1 // a command sent by name: OnTell
	inputPost                              // the protocol's own post: OnPost
	inputNotification                      // a publication: OnNotification
)

// handler names the registration function of the kind.
func (k inputKind) handler() string {
	switch k {
	case inputTell:
		return "OnTell"
	case inputPost:
		return "OnPost"
	default:
		return "OnNotification"
	}
}

// localType is what a protocol's snapshot knows of one local input type.
type localType struct {
	kind inputKind
	name string
}

// localInputs is a snapshot of the local input types of a protocol, for
// senders on any goroutine to check against: immutable once stored in
// protocolHost.inputs, replaced whole when a handler is registered.
type localInputs struct {
	types typeTable[localType]
}

// accepts returns nil when h's protocol takes m as input of kind k, or an
// error wrapping ErrNoHandler that says what it takes. It reads the
// snapshot: safe from any goroutine, and allocates nothing when m is taken.
func (h *protocolHost) accepts(m any, k inputKind) error {
	if in := h.inputs.Load(); in != nil {
		if lt, ok := in.types.get(keyOf(m)); ok && lt.kind == k {
			return nil
		}
	}
	return h.refuseInput(m, k)
}

// refuseInput is the error of a Tell or Post of a type h's protocol does
// not take as that kind of input.
func (h *protocolHost) refuseInput(m any, k inputKind) error {
	var types typeTable[localType]
	if in := h.inputs.Load(); in != nil {
		types = in.types
	}
	name := typeName(m)
	var b strings.Builder
	fmt.Fprintf(&b, "protocol %s on node %s has no %s handler for %s", h.name, h.node.name, k.handler(), name)
	if lt, ok := types.get(keyOf(m)); ok {
		switch lt.kind {
		case inputPost:
			b.WriteString(": it is the protocol's own post (OnPost), which only the protocol sends itself")
		case inputNotification:
			b.WriteString(": the protocol subscribes to it as a notification (OnNotification); publish it with Context.Notify or Node.Publish")
		case inputTell:
			b.WriteString(": it is a command the protocol takes by Tell (OnTell); send it with Tell")
		}
	} else if twin, ok := pointerTwinOf(m); ok {
		if lt, ok := types.get(twin); ok && lt.kind == k {
			fmt.Fprintf(&b, " (it handles %s: send that)", lt.name)
			return fmt.Errorf("%w: %s", ErrNoHandler, b.String())
		}
	}
	var takes []string
	for _, lt := range types.entries {
		if lt.kind == k {
			takes = append(takes, lt.name)
		}
	}
	if len(takes) == 0 {
		fmt.Fprintf(&b, " (it registers no %s handler)", k.handler())
	} else {
		fmt.Fprintf(&b, " (its %s types: %s)", k.handler(), strings.Join(takes, ", "))
	}
	return fmt.Errorf("%w: %s", ErrNoHandler, b.String())
}

// pointerTwinOf is the typeKey of *T for a T, or of T for a *T: the
// commonest cause of a Tell of the wrong type. It allocates; for errors.
func pointerTwinOf(m any) (typeKey, bool) {
	t := reflect.TypeOf(m)
	if t == nil {
		return nil, false
	}
	twin := reflect.PointerTo(t)
	if t.Kind() == reflect.Pointer {
		twin = t.Elem()
	}
	if twin.Kind() == reflect.Interface {
		return nil, false
	}
	return keyOf(reflect.Zero(twin).Interface()), true
}

// storeInputs publishes the current incarnation's local input types to
// senders. While Init runs, the previous incarnation's types stay in the
// snapshot next to those registered so far, so that a sender racing a
// restart is not refused a type the new incarnation is about to register;
// when Init returns (begin), the snapshot becomes the incarnation's own.
func (h *protocolHost) storeInputs() {
	next := &localInputs{}
	if h.initing {
		if old := h.inputs.Load(); old != nil {
			for i, k := range old.types.keys {
				next.types.set(k, old.types.entries[i])
			}
		}
	}
	for i, k := range h.ctx.localH.keys {
		e := h.ctx.localH.entries[i]
		next.types.set(k, localType{kind: e.kind, name: e.name})
	}
	h.inputs.Store(next)
}

// onLocal handles local input: commands, posts and notifications. The
// sender checked the kind against the snapshot; the type tells it here,
// as a type is one kind of input to a protocol. What slips through (the
// protocol restarted and its new incarnation does not register the type)
// is a dead letter: counted and logged.
func (h *protocolHost) onLocal(m any) {
	if h.ctx == nil {
		return
	}
	e, ok := h.ctx.localH.get(keyOf(m))
	if !ok {
		switch m.(type) {
		case actor.SystemMessage, actor.AutoReceiveMessage:
			return // lifecycle messages the runtime needs no action for
		}
		if twin, ok := pointerTwinOf(m); ok {
			if alt, ok := h.ctx.localH.get(twin); ok {
				h.unhandled("local message", typeName(m)+" (it handles "+alt.name+": send that)", "")
				return
			}
		}
		h.unhandled("local message", typeName(m), "")
		return
	}
	e.stats.msgsIn.Add(1)
	h.run(e, "", m)
}

// registerLocal registers fn as the handler of local input of type M and
// kind k.
func registerLocal[M any](ctx *Context, k inputKind, fn func(*Context, M) error) reflect.Type {
	t := reflect.TypeFor[M]()
	what := k.handler()
	mustConcrete(what, t)
	key := keyFor[M]()
	if e, ok := ctx.localH.get(key); ok && e.kind != k {
		panic(fmt.Sprintf("actors: protocol %s registers %s with %s, but has an %s handler for it already: a type is one kind of local input to a protocol (a command by Tell, its own post, or a notification); give each kind its own type",
			ctx.h.name, typeNameOf(t), what, e.kind.handler()))
	}
	e := ctx.newEntry(t, func(c *Context, _ NodeName, m any) error { return fn(c, m.(M)) })
	e.kind = k
	ctx.localH.set(key, e)
	if ctx == ctx.h.ctx {
		ctx.h.storeInputs()
	}
	return t
}

// OnTell registers the handler of commands of type M sent to this
// protocol by name: [Node.Tell], [Context.Tell] and [Ref.Tell]. A Tell of a
// type the protocol has no OnTell handler for fails at the sender with
// [ErrNoHandler]. A later registration for the same type replaces the
// earlier one; registering M also with OnPost or OnNotification panics.
func OnTell[M any](ctx *Context, h func(ctx *Context, m M) error) {
	registerLocal(ctx, inputTell, h)
}

// OnPost registers the handler of this protocol's own posts of type M:
// [Context.Post] from its handlers and [Ref.Post] from the goroutines it
// owns (on the Ref of [Context.Ref]), which is how long work done off the
// mailbox reports back. Posts are private: no other protocol and no code
// outside can send the protocol M. A later registration for the same type
// replaces the earlier one; registering M also with OnTell or
// OnNotification panics.
func OnPost[M any](ctx *Context, h func(ctx *Context, m M) error) {
	registerLocal(ctx, inputPost, h)
}

// OnNotification registers the handler of notifications of type N
// published on this node: by a protocol's [Context.Notify] (this one's
// included), by [Node.Publish], or by the runtime ([ProtocolRestarted],
// [ProtocolStopped]). Registering subscribes the protocol to N. N cannot
// be sent to the protocol with Tell; registering N also with OnTell or
// OnPost panics.
func OnNotification[N any](ctx *Context, h func(ctx *Context, n N) error) {
	t := registerLocal(ctx, inputNotification, h)
	ctx.h.node.subscribe(t, ctx.h.self)
}

// Post hands m to this protocol's own OnPost handler for m's type, as a
// later event: a handler's way to continue its work after the events
// already queued. It fails with ErrNoHandler when the protocol has no
// OnPost handler for m's type, and with ErrDeadContext after the
// incarnation ended.
func (c *Context) Post(m any) error {
	if c.dead("Post") {
		return c.errDead("Post")
	}
	e, ok := c.localH.get(keyOf(m))
	if !ok || e.kind != inputPost {
		return c.h.refuseInput(m, inputPost)
	}
	c.h.post(m)
	e.stats.msgsOut.Add(1)
	return nil
}

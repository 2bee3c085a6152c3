package actors

import (
	"fmt"
	"reflect"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Returns marks a request type with the type of its reply: a request type
// embeds Returns[Rep], and [OnRequest], [OnRequestDeferred], [Request] and
// [Call] check at compile time that its reply is a Rep.
//
//	type StatusRequest struct {
//		actors.Returns[Status]
//		ID string
//	}
type Returns[Rep any] struct{}

func (Returns[Rep]) returns(*Rep) {}

// Asks is the constraint of request types: those that embed [Returns][Rep].
type Asks[Rep any] interface{ returns(*Rep) }

type reqEntry struct {
	name  string
	fn    func(ctx *Context, req any, a *answer) error
	stats *typeMetrics
}

// pendingReq is one request a protocol sent with Request and awaits the
// reply to. Its request message travels inside it (msg), and it waits in
// the Context's pending map and deadline heap (deadlines.go) until the
// reply or its deadline, whichever comes first.
type pendingReq struct {
	msg      requestMsg
	kind     *replyKind
	target   ProtocolName
	timeout  time.Duration
	deadline time.Time
	index    int // in the deadline heap
	onReply  any // the caller's func(*Context, Rep, error) error
}

// replyKind is what a protocol's replies to one request type share: the
// request's name and the counters of both types, found once per type.
type replyKind struct {
	reqType  string
	reqStats *typeMetrics
	e        entry                                              // "reply to <request>", counted as the reply type
	call     func(c *Context, p *pendingReq, m *replyMsg) error // callReply[Rep]
}

// answer is one request's way back, open until the handler answers it
// (now or from a later event) or the incarnation ends. Its reply message
// travels inside it.
type answer struct {
	h       *protocolHost
	ctx     *Context
	id      uint64
	replyTo *actor.PID
	to      *protocolHost // the asking protocol, when a protocol asked (Request)
	what    string        // the request's type, for errors
	done    bool
	reply   replyMsg
}

// finish sends the reply, once.
func (a *answer) finish(body any, err error) error {
	switch {
	case a == nil:
		return fmt.Errorf("%w: the zero Reply", ErrAnswered)
	case a.done:
		return fmt.Errorf("%w: %s to protocol %s", ErrAnswered, a.what, a.h.name)
	case a.ctx.done.Load():
		a.ctx.misuse("answering " + a.what)
		return fmt.Errorf("%w: answering %s: the request was answered %v when the incarnation ended", ErrDeadContext, a.what, ErrUnanswered)
	}
	a.done = true
	delete(a.ctx.answers, a)
	// Written once, before it is sent; read only by the asker afterwards.
	a.reply = replyMsg{id: a.id, body: body, err: err}
	if a.to != nil {
		a.to.enqueue(&a.reply)
	} else {
		a.h.node.system.Root.Send(a.replyTo, &a.reply)
	}
	if body != nil {
		a.h.statsOf(body).msgsOut.Add(1)
	}
	return nil
}

// Reply is the handle on one request's answer, given to an
// [OnRequestDeferred] handler: answer with Send or Fail, once, from this
// handler or from a later event of the same incarnation (a commit, a vote,
// a timer). Like the Context, it is used from the protocol's events only.
// When the incarnation ends (restart or stop) with the request unanswered,
// the runtime answers it with ErrUnanswered, after the protocol's Stop hook
// had its chance to answer. The requester's timeout still applies: a reply
// after it is dropped.
type Reply[Rep any] struct{ a *answer }

// Send answers the request with rep. It fails with ErrAnswered when the
// request was answered already, ErrDeadContext after the incarnation ended.
func (r Reply[Rep]) Send(rep Rep) error { return r.a.finish(rep, nil) }

// Fail answers the request with err (which must not be nil).
func (r Reply[Rep]) Fail(err error) error {
	if err == nil {
		err = fmt.Errorf("actors: Reply.Fail with a nil error")
	}
	return r.a.finish(nil, err)
}

// Answered reports whether the request was answered (by Send, Fail, the
// runtime at the incarnation's end), or the Reply is the zero Reply.
func (r Reply[Rep]) Answered() bool { return r.a == nil || r.a.done }

// OnRequest registers the handler of local requests of type Req, which
// answers by returning: its result (or error) goes back to the requester as
// the reply; an error here answers the request and does not restart the
// protocol. A panic restarts the protocol and answers ErrHandlerPanicked.
// A handler that answers from a later event is registered with
// [OnRequestDeferred].
func OnRequest[Req Asks[Rep], Rep any](ctx *Context, h func(ctx *Context, req Req) (Rep, error)) {
	register[Req](ctx, "OnRequest", func(c *Context, req any, a *answer) error {
		rep, err := h(c, req.(Req))
		if err != nil {
			return a.finish(nil, err)
		}
		return a.finish(rep, nil)
	})
}

// OnRequestDeferred registers the handler of local requests of type Req
// that answers through reply, now or from a later event of this
// incarnation (see [Reply]). An error it returns answers the request when
// it is still unanswered (and is logged when it was), without restarting
// the protocol; a panic restarts the protocol and answers
// ErrHandlerPanicked.
func OnRequestDeferred[Req Asks[Rep], Rep any](ctx *Context, h func(ctx *Context, req Req, reply Reply[Rep]) error) {
	register[Req](ctx, "OnRequestDeferred", func(c *Context, req any, a *answer) error {
		return h(c, req.(Req), Reply[Rep]{a})
	})
}

func register[Req any](ctx *Context, what string, fn func(*Context, any, *answer) error) {
	t := reflect.TypeFor[Req]()
	mustConcrete(what, t)
	name := typeNameOf(t)
	ctx.reqH.set(keyFor[Req](), &reqEntry{name: name, stats: ctx.h.metrics.typ(name), fn: fn})
}

// Request sends req to protocol `protocol` on this node without waiting:
// onReply runs later, as an event of this protocol, with the reply or with
// an error (ErrTimeout after timeout; 0 means Config.RequestTimeout). It
// fails at once when no such protocol runs.
func Request[Req Asks[Rep], Rep any](ctx *Context, protocol ProtocolName, req Req, timeout time.Duration, onReply func(ctx *Context, rep Rep, err error) error) error {
	if ctx.dead("Request") {
		return ctx.errDead("Request")
	}
	h := ctx.h
	target, err := h.node.target(protocol)
	if err != nil {
		return err
	}
	if timeout <= 0 {
		timeout = h.node.cfg.RequestTimeout
	}
	h.nextReq++
	p := &pendingReq{
		msg:     requestMsg{id: h.nextReq, replyTo: h.self, from: h, body: req},
		kind:    replyKindOf[Rep](h, req),
		target:  protocol,
		timeout: timeout,
		onReply: onReply,
	}
	ctx.pending[p.msg.id] = p
	ctx.addDeadline(p)
	p.kind.reqStats.msgsOut.Add(1)
	target.enqueue(&p.msg)
	return nil
}

// callReply runs p's onReply with the reply m (or its error).
func callReply[Rep any](c *Context, p *pendingReq, m *replyMsg) error {
	onReply := p.onReply.(func(*Context, Rep, error) error)
	var v Rep
	if m.err == nil && m.body != nil {
		var ok bool
		if v, ok = m.body.(Rep); !ok {
			return onReply(c, v, fmt.Errorf("%w: %s to protocol %s answered %T, want %v", ErrReplyType, p.kind.reqType, p.target, m.body, reflect.TypeFor[Rep]()))
		}
	}
	return onReply(c, v, m.err)
}

// replyKindOf is the replyKind of requests like req, made the first time
// (a request type has one reply type: Returns). Only the protocol's actor
// calls it.
func replyKindOf[Rep any](h *protocolHost, req any) *replyKind {
	k := keyOf(req)
	if rk, ok := h.replyKinds.get(k); ok {
		return rk
	}
	name := typeName(req)
	rk := &replyKind{reqType: name, reqStats: h.metrics.typ(name), call: callReply[Rep]}
	rk.e = entry{name: "reply to " + name, stats: h.metrics.typ(typeNameOf(reflect.TypeFor[Rep]()))}
	h.replyKinds.set(k, rk)
	return rk
}

func (h *protocolHost) onRequest(m *requestMsg) {
	reply := func(body any, err error) {
		r := &replyMsg{id: m.id, body: body, err: err}
		if m.from != nil {
			m.from.enqueue(r)
		} else {
			h.node.system.Root.Send(m.replyTo, r)
		}
	}
	if h.ctx == nil {
		reply(nil, fmt.Errorf("%w: %s", ErrProtocolStopped, h.name))
		return
	}
	e, ok := h.ctx.reqH.get(keyOf(m.body))
	if !ok {
		h.metrics.unhandled.Add(1)
		reply(nil, fmt.Errorf("%w: protocol %s on node %s has no request handler for %s", ErrNoHandler, h.name, h.node.name, typeName(m.body)))
		return
	}
	e.stats.msgsIn.Add(1)
	a := &answer{h: h, ctx: h.ctx, id: m.id, replyTo: m.replyTo, to: m.from, what: e.name}
	h.ctx.answers[a] = struct{}{}
	defer func() {
		if r := recover(); r != nil {
			if !a.done {
				_ = a.finish(nil, fmt.Errorf("%w: protocol %s handling %s: %v", ErrHandlerPanicked, h.name, e.name, r))
			}
			panic(r)
		}
	}()
	var err error
	if h.sample() {
		start := h.node.monotonic()
		err = e.fn(h.ctx, m.body, a)
		e.stats.latency.observe(h.node.monotonic() - start)
	} else {
		err = e.fn(h.ctx, m.body, a)
	}
	if err != nil {
		if ferr := a.finish(nil, err); ferr != nil {
			h.log.Warn().Err(err).Str("request", e.name).Msg("a request handler returned an error after answering")
		}
	}
}

func (h *protocolHost) onReply(m *replyMsg) {
	if h.ctx == nil {
		return
	}
	p, ok := h.ctx.pending[m.id]
	if !ok { // timed out already, or sent by an earlier incarnation
		h.log.Debug().Uint64("request", m.id).Msg("dropping a late reply")
		return
	}
	delete(h.ctx.pending, m.id)
	h.ctx.removeDeadline(p)
	h.runReply(p, m)
}

// runReply runs the reply handler of p with m, as run does a handler.
func (h *protocolHost) runReply(p *pendingReq, m *replyMsg) {
	e := &p.kind.e
	e.stats.msgsIn.Add(1)
	var err error
	if !h.sample() {
		err = p.kind.call(h.ctx, p, m)
	} else {
		start := h.node.monotonic()
		err = p.kind.call(h.ctx, p, m)
		e.stats.latency.observe(h.node.monotonic() - start)
	}
	if err != nil {
		panic(&HandlerError{Protocol: h.name, Type: e.name, Err: err})
	}
}

// onRequestTimeout answers p, whose deadline passed, with ErrTimeout.
func (h *protocolHost) onRequestTimeout(p *pendingReq) {
	delete(h.ctx.pending, p.msg.id)
	h.runReply(p, &replyMsg{id: p.msg.id, err: fmt.Errorf("%w: %s to protocol %s after %v", ErrTimeout, p.kind.reqType, p.target, p.timeout)})
}

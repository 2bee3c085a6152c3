package actors

import (
	"fmt"
	"reflect"
	"time"
)

type reqEntry struct {
	name  string
	fn    func(ctx *Context, req any) (any, error)
	stats *typeMetrics
}

type pendingReq struct {
	reqType string
	target  string
	timeout time.Duration
	timer   TimerID
	cb      *entry
}

// OnRequest registers the handler of local requests of type Req. Its result
// (or error) goes back to the requester as the reply; an error here answers
// the request and does not restart the protocol. A panic restarts the
// protocol and answers ErrHandlerPanicked.
func OnRequest[Req, Rep any](ctx *Context, h func(ctx *Context, req Req) (Rep, error)) {
	t := reflect.TypeFor[Req]()
	mustConcrete("OnRequest", t)
	name := typeNameOf(t)
	ctx.reqH.set(keyFor[Req](), &reqEntry{name: name, stats: ctx.h.metrics.typ(name), fn: func(c *Context, req any) (any, error) {
		return h(c, req.(Req))
	}})
}

// Request sends req to protocol `protocol` on this node without waiting:
// onReply runs later, as an event of this protocol, with the reply or with
// an error (ErrTimeout after timeout; 0 means Config.RequestTimeout). It
// fails at once when no such protocol runs.
func Request[Rep any](ctx *Context, protocol string, req any, timeout time.Duration, onReply func(ctx *Context, rep Rep, err error) error) error {
	h := ctx.h
	target, err := h.node.target(protocol)
	if err != nil {
		return err
	}
	if timeout <= 0 {
		timeout = h.node.cfg.RequestTimeout
	}
	h.nextReq++
	id := h.nextReq
	repType := reflect.TypeFor[Rep]()
	p := &pendingReq{reqType: typeName(req), target: protocol, timeout: timeout}
	p.cb = &entry{name: "reply to " + p.reqType, stats: h.metrics.typ(typeNameOf(repType)), fn: func(c *Context, _ string, m any) error {
		rep := m.(*replyMsg)
		var v Rep
		if rep.err == nil && rep.body != nil {
			var ok bool
			if v, ok = rep.body.(Rep); !ok {
				return onReply(c, v, fmt.Errorf("%w: %s to protocol %s answered %T, want %v", ErrReplyType, p.reqType, protocol, rep.body, repType))
			}
		}
		return onReply(c, v, rep.err)
	}}
	p.timer = ctx.startTimer(ctx.timers, timeout, 0, nil, func() { h.onRequestTimeout(id) })
	ctx.pending[id] = p
	h.metrics.typ(p.reqType).msgsOut.Add(1)
	h.node.system.Root.Send(target.pid, &requestMsg{id: id, replyTo: h.self, body: req})
	return nil
}

func (h *protocolHost) onRequest(m *requestMsg) {
	reply := func(body any, err error) {
		h.node.system.Root.Send(m.replyTo, &replyMsg{id: m.id, body: body, err: err})
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
	answered := false
	defer func() {
		if r := recover(); r != nil {
			if !answered {
				reply(nil, fmt.Errorf("%w: protocol %s handling %s: %v", ErrHandlerPanicked, h.name, e.name, r))
			}
			panic(r)
		}
	}()
	var rep any
	var err error
	if h.sample() {
		start := h.node.monotonic()
		rep, err = e.fn(h.ctx, m.body)
		e.stats.latency.observe(h.node.monotonic() - start)
	} else {
		rep, err = e.fn(h.ctx, m.body)
	}
	answered = true
	reply(rep, err)
	if rep != nil {
		h.metrics.typ(typeName(rep)).msgsOut.Add(1)
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
	h.ctx.Cancel(p.timer)
	p.cb.stats.msgsIn.Add(1)
	h.run(p.cb, "", m)
}

func (h *protocolHost) onRequestTimeout(id uint64) {
	p, ok := h.ctx.pending[id]
	if !ok {
		return
	}
	delete(h.ctx.pending, id)
	h.run(p.cb, "", &replyMsg{id: id, err: fmt.Errorf("%w: %s to protocol %s after %v", ErrTimeout, p.reqType, p.target, p.timeout)})
}

package actors

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// OnReconfigure registers the handler of a run-time change of the
// protocol's configuration, of type C (usually the protocol's Config):
// [Node.Reconfigure] delivers it as an event, one at a time with every
// other event, like a request whose reply is the handler's verdict.
//
// The handler applies the new configuration or refuses it by returning an
// error, which goes back to the caller of Reconfigure and does not restart
// the protocol; a handler that refuses must leave the protocol as it was. A
// panic restarts the protocol and refuses the change.
//
// The runtime keeps the last configuration a protocol accepted and hands
// it again to every later incarnation, right after its Init and before any
// other event: a supervised restart, which takes a fresh value from the
// protocol's Factory, does not fall back to the configuration the factory
// was made with. An error then counts as a failure of the new incarnation.
func OnReconfigure[C any](ctx *Context, h func(ctx *Context, cfg C) error) {
	t := reflect.TypeFor[C]()
	mustConcrete("OnReconfigure", t)
	ctx.reconfH.set(keyFor[C](), ctx.newEntry(t, func(c *Context, _ NodeName, m any) error { return h(c, m.(C)) }))
}

// ProtocolReconfigured is published (as a notification, to every subscriber
// on the node) each time a protocol accepts a new configuration through
// [Node.Reconfigure].
type ProtocolReconfigured struct {
	Node     NodeName
	Protocol ProtocolName
	Config   any // the configuration the protocol accepted
}

// reconfigureMsg asks a protocol to take a new configuration.
type reconfigureMsg struct {
	replyTo *actor.PID
	cfg     any
}

// Reconfigure delivers cfg to a protocol of node n as a reconfiguration
// event and waits for its verdict: nil when the protocol applied it, an
// error wrapping [ErrReconfigureRefused] when its handler refused it (the
// protocol keeps its configuration), [ErrNoHandler] when the protocol has
// no OnReconfigure handler for cfg's type (it cannot change that
// configuration without a restart), or [ErrTimeout]. The wait ends at
// ctx's deadline or after Config.RequestTimeout. Safe from any goroutine.
func (n *Node) Reconfigure(ctx context.Context, protocol ProtocolName, cfg any) error {
	if cfg == nil {
		return fmt.Errorf("actors: Reconfigure of protocol %s with a nil configuration", protocol)
	}
	h, err := n.target(protocol)
	if err != nil {
		return err
	}
	timeout := n.cfg.RequestTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if timeout <= 0 {
		return fmt.Errorf("reconfiguring protocol %s: %w", protocol, context.DeadlineExceeded)
	}
	f := actor.NewFuture(n.system, timeout)
	n.system.Root.Send(h.pid, &reconfigureMsg{replyTo: f.PID(), cfg: cfg})
	res, err := f.Result()
	if err != nil {
		return fmt.Errorf("%w: reconfiguring protocol %s on node %s: no answer within %v", ErrTimeout, protocol, n.name, timeout)
	}
	return res.(*replyMsg).err
}

// onReconfigure runs a protocol's reconfiguration handler and answers.
func (h *protocolHost) onReconfigure(m *reconfigureMsg) {
	reply := func(err error) { h.node.system.Root.Send(m.replyTo, &replyMsg{err: err}) }
	if h.ctx == nil {
		reply(fmt.Errorf("%w: %s", ErrProtocolStopped, h.name))
		return
	}
	e, ok := h.ctx.reconfH.get(keyOf(m.cfg))
	if !ok {
		reply(fmt.Errorf("%w: protocol %s on node %s takes no run-time reconfiguration of %s; restart the node to change it",
			ErrNoHandler, h.name, h.node.name, typeName(m.cfg)))
		return
	}
	e.stats.msgsIn.Add(1)
	answered := false
	defer func() {
		if r := recover(); r != nil {
			if !answered {
				reply(fmt.Errorf("%w: protocol %s panicked applying it: %v", ErrReconfigureRefused, h.name, r))
			}
			panic(r)
		}
	}()
	err := e.fn(h.ctx, "", m.cfg)
	answered = true
	if err != nil {
		h.log.Warn().Err(err).Str("type", e.name).Msg("reconfiguration refused; the configuration is unchanged")
		reply(fmt.Errorf("%w: protocol %s on node %s: %w", ErrReconfigureRefused, h.name, h.node.name, err))
		return
	}
	h.config = m.cfg
	h.metrics.reconfigured.Add(1)
	h.log.Info().Str("type", e.name).Msg("protocol reconfigured")
	reply(nil)
	h.node.publish(&ProtocolReconfigured{Node: h.node.name, Protocol: h.name, Config: m.cfg})
}

// reapplyConfig hands a new incarnation the last configuration the
// protocol accepted.
func (h *protocolHost) reapplyConfig() error {
	if h.config == nil {
		return nil
	}
	e, ok := h.ctx.reconfH.get(keyOf(h.config))
	if !ok {
		return fmt.Errorf("protocol %s accepted a %s at run time but its new incarnation has no OnReconfigure handler for it", h.name, typeName(h.config))
	}
	return e.fn(h.ctx, "", h.config)
}

package actors

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
)

// supervisor is the protoactor supervisor strategy of a node's protocols.
// protoactor calls HandleFailure on the failing actor's goroutine, with its
// mailbox suspended, so per-protocol failure state needs no lock.
type supervisor struct{ node *Node }

var _ actor.SupervisorStrategy = (*supervisor)(nil)

func (s *supervisor) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason, _ any) {
	h := s.node.hostOf(child)
	if h == nil {
		sup.StopChildren(child)
		return
	}
	h.onFailure(sup, child, reason)
}

func (n *Node) hostOf(pid *actor.PID) *protocolHost {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range n.order {
		if pid.Id == actorName(h.name) {
			return h
		}
	}
	return nil
}

func (h *protocolHost) onFailure(sup actor.Supervisor, child *actor.PID, reason any) {
	n := h.node
	cfg := n.cfg.Supervision
	why := fmt.Sprint(reason)
	if !h.everUp { // the first Init panicked: Start reports it
		h.everUp = true
		h.started <- fmt.Errorf("Init panicked: %s", why)
		return
	}
	now := n.clock.Now()
	kept := h.failures[:0]
	for _, t := range h.failures {
		if now.Sub(t) < cfg.Window {
			kept = append(kept, t)
		}
	}
	h.failures = append(kept, now)
	if len(h.failures) > cfg.MaxRestarts {
		h.metrics.stopped.Store(true)
		ev := &ProtocolStopped{Node: n.name, Protocol: h.name, Reason: why, Failures: len(h.failures), Window: cfg.Window}
		ev.log(&h.log)
		sup.StopChildren(child)
		n.publish(ev)
		return
	}
	backoff := cfg.Backoff << (len(h.failures) - 1)
	if backoff > cfg.MaxBackoff || backoff <= 0 {
		backoff = cfg.MaxBackoff
	}
	ev := &ProtocolRestarted{Node: n.name, Protocol: h.name, Reason: why, Restarts: h.metrics.restarts.Add(1), Backoff: backoff}
	ev.log(&h.log)
	n.afterFunc(backoff, func() { sup.RestartChildren(child) })
	n.publish(ev)
}

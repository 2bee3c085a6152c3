package actors

import (
	"fmt"
	"reflect"
	"time"
)

// TimerID names a timer so it can be cancelled. IDs are never reused within
// a protocol.
type TimerID uint64

type timer struct {
	id      TimerID
	payload any           // user timer: handed to the OnTimer handler of its type
	fn      func()        // runtime timer: run in the actor
	period  time.Duration // 0 for one-shot
	stop    Timer
	fired   *timerFired
}

// After fires a one-shot timer: after d, the OnTimer handler registered for
// payload's type runs with payload.
//
// On a dead Context (see Context) it starts nothing and returns 0, which
// names no timer.
func (c *Context) After(d time.Duration, payload any) TimerID {
	if c.dead("After") {
		return 0
	}
	return c.startTimer(c.timers, d, 0, payload, nil)
}

// Every fires a periodic timer every d (a fixed delay from the end of one
// handler run to the next firing) until it is cancelled. d must be positive.
func (c *Context) Every(d time.Duration, payload any) TimerID {
	if d <= 0 {
		panic(fmt.Sprintf("actors: Every(%v): the period must be positive", d))
	}
	if c.dead("Every") {
		return 0
	}
	return c.startTimer(c.timers, d, d, payload, nil)
}

// Cancel cancels a timer of this incarnation. A cancelled timer never fires,
// even if its message is already in the mailbox. It reports whether the
// timer was still pending.
func (c *Context) Cancel(id TimerID) bool {
	t, ok := c.timers[id]
	if !ok {
		return false
	}
	delete(c.timers, id)
	t.stop.Stop()
	return true
}

func (c *Context) startTimer(into map[TimerID]*timer, d, period time.Duration, payload any, fn func()) TimerID {
	if payload != nil {
		mustConcrete("a timer payload", reflect.TypeOf(payload))
	}
	h := c.h
	h.nextTimer++
	t := &timer{id: h.nextTimer, payload: payload, fn: fn, period: period}
	t.fired = &timerFired{id: t.id}
	into[t.id] = t
	h.arm(t, d)
	return t.id
}

// hostTimer starts a runtime timer that outlives incarnations.
func (h *protocolHost) hostTimer(d, period time.Duration, fn func()) TimerID {
	h.nextTimer++
	t := &timer{id: h.nextTimer, fn: fn, period: period}
	t.fired = &timerFired{id: t.id}
	h.hostTimers[t.id] = t
	h.arm(t, d)
	return t.id
}

func (h *protocolHost) cancelHostTimer(id TimerID) {
	if t, ok := h.hostTimers[id]; ok {
		delete(h.hostTimers, id)
		t.stop.Stop()
	}
}

func (h *protocolHost) arm(t *timer, d time.Duration) {
	fired := t.fired
	t.stop = h.node.afterFunc(d, func() { h.post(fired) })
}

// onTimer runs a fired timer if it is still live: a timer cancelled after
// its message was queued is not found and is dropped here.
func (h *protocolHost) onTimer(m *timerFired) {
	all := h.hostTimers
	t, ok := all[m.id]
	if !ok && h.ctx != nil {
		all = h.ctx.timers
		t, ok = all[m.id]
	}
	if !ok {
		return
	}
	if t.period == 0 {
		delete(all, t.id)
	}
	if t.fn != nil {
		t.fn()
	} else {
		e, ok := h.ctx.timerH.get(keyOf(t.payload))
		if !ok {
			h.unhandled("timer", typeName(t.payload), "")
		} else {
			e.stats.msgsIn.Add(1)
			h.metrics.timers.Add(1)
			h.run(e, "", t.payload)
		}
	}
	if t.period > 0 {
		if _, live := all[t.id]; live {
			h.arm(t, t.period)
		}
	}
}

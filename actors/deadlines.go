package actors

import (
	"container/heap"
	"time"
)

// Request deadlines. A Context keeps the requests it awaits in a min-heap
// by deadline (ties by request id, so one seed gives one order) and one
// runtime timer for the earliest: a request costs a heap push and a clock
// read, not a timer of its own. The timer is left armed when replies empty
// the heap; when it fires it times out what is due and is armed again for
// the next deadline, if any. So a protocol that keeps asking re-arms about
// once per timeout, not once per request.

// deadlines is the heap of a Context's pending requests.
type deadlines []*pendingReq

func (d deadlines) Len() int { return len(d) }
func (d deadlines) Less(i, j int) bool {
	if !d[i].deadline.Equal(d[j].deadline) {
		return d[i].deadline.Before(d[j].deadline)
	}
	return d[i].msg.id < d[j].msg.id
}
func (d deadlines) Swap(i, j int) {
	d[i], d[j] = d[j], d[i]
	d[i].index, d[j].index = i, j
}
func (d *deadlines) Push(x any) {
	p := x.(*pendingReq)
	p.index = len(*d)
	*d = append(*d, p)
}
func (d *deadlines) Pop() any {
	old := *d
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*d = old[:len(old)-1]
	p.index = -1
	return p
}

// addDeadline puts p, sent now, in the heap, arming the timer when p is
// due before it would fire.
func (c *Context) addDeadline(p *pendingReq) {
	now := c.Now()
	p.deadline = now.Add(p.timeout)
	heap.Push(&c.deadlines, p)
	if c.deadlineTimer == 0 || p.deadline.Before(c.deadlineAt) {
		c.armDeadlines(now, p.deadline)
	}
}

// removeDeadline takes p, answered, out of the heap. The timer stays.
func (c *Context) removeDeadline(p *pendingReq) {
	if p.index >= 0 {
		heap.Remove(&c.deadlines, p.index)
	}
}

// armDeadlines (re)arms the timer to fire at `at`.
func (c *Context) armDeadlines(now, at time.Time) {
	if c.deadlineTimer != 0 {
		c.Cancel(c.deadlineTimer)
	}
	c.deadlineAt = at
	c.deadlineTimer = c.startTimer(c.timers, max(at.Sub(now), 0), 0, nil, c.onDeadlines)
}

// onDeadlines runs when the timer fires: every request whose deadline
// passed is answered with ErrTimeout, in deadline order, and the timer is
// armed for the next one.
func (c *Context) onDeadlines() {
	c.deadlineTimer = 0
	now := c.Now()
	for len(c.deadlines) > 0 {
		p := c.deadlines[0]
		if p.deadline.After(now) {
			c.armDeadlines(now, p.deadline)
			return
		}
		heap.Pop(&c.deadlines)
		c.h.onRequestTimeout(p)
	}
}

package actortest

import (
	"slices"
	"sync"
	"time"

	"github.com/troupe-dev/troupe/actors"
)

// ManualClock is an [actors.Clock] that only moves when the test says so:
// Advance runs every callback that falls due, in time order, on the
// caller's goroutine. It makes timer tests exact.
type ManualClock struct {
	mu      sync.Mutex
	now     time.Time
	pending []*manualTimer
}

var _ actors.Clock = (*ManualClock)(nil)

type manualTimer struct {
	c       *ManualClock
	at      time.Time
	f       func()
	stopped bool
}

// NewManualClock starts at a fixed instant.
func NewManualClock() *ManualClock {
	return &ManualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *ManualClock) AfterFunc(d time.Duration, f func()) actors.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{c: c, at: c.now.Add(d), f: f}
	c.pending = append(c.pending, t)
	return t
}

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped && slices.Contains(t.c.pending, t)
	t.stopped = true
	t.c.pending = slices.DeleteFunc(t.c.pending, func(x *manualTimer) bool { return x == t })
	return was
}

// Pending counts the callbacks not yet run nor stopped.
func (c *ManualClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Advance moves time forward by d, running due callbacks in order.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		slices.SortStableFunc(c.pending, func(a, b *manualTimer) int { return a.at.Compare(b.at) })
		if len(c.pending) == 0 || c.pending[0].at.After(end) {
			c.now = end
			c.mu.Unlock()
			return
		}
		t := c.pending[0]
		c.pending = c.pending[1:]
		c.now = t.at
		c.mu.Unlock()
		t.f()
	}
}

package actors

import "time"

// Clock is the node's source of time. Protocols see it through
// [Context.Now] and timers; a simulation substitutes its own. Both methods
// are safe for concurrent use.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f on its own goroutine after d, unless the returned
	// timer is stopped first. f must not block.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending [Clock.AfterFunc].
type Timer interface {
	// Stop prevents the call if it has not started; it reports whether it did.
	Stop() bool
}

// RealClock is the wall clock of the time package.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

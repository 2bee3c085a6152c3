package security

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// LogLimiter bounds the warnings a flood of hostile or broken input can
// write, and counts what it holds back: of each kind of warning, the first
// burst of a period are logged, the rest are counted, and when the period
// ends one line reports them: "<kind> (N similar suppressed)", with the
// count in the field "suppressed". Nothing is dropped without a trace, as
// zerolog's samplers do.
//
// A kind is a fixed string naming what happened ("refused a TLS
// connection"); the limiter keeps one counter per kind, so kinds must not
// carry input (addresses, names): those go in the event's fields.
//
// A LogLimiter is safe for concurrent use. Its reports run on timers;
// Close reports what is pending at once and waits for running reports.
type LogLimiter struct {
	log    zerolog.Logger
	burst  int
	period time.Duration
	now    func() time.Time

	mu     sync.Mutex
	kinds  map[string]*limited
	closed bool
	wg     sync.WaitGroup // reports armed and not yet finished
}

type limited struct {
	start      time.Time   // of the current period
	logged     int         // lines of this kind logged in the period
	suppressed int         // lines held back and not yet reported
	timer      *time.Timer // reports the suppressed lines at the end of the period
}

// NewLogLimiter logs through log at most burst warnings of each kind per
// period (burst at least 1; a period of at least a millisecond).
func NewLogLimiter(log zerolog.Logger, burst int, period time.Duration) *LogLimiter {
	return &LogLimiter{log: log, burst: max(burst, 1), period: max(period, time.Millisecond), now: time.Now, kinds: map[string]*limited{}}
}

// Warn returns a warning event of kind to fill in and send with Msg, or nil
// when the kind has used up its burst in this period. zerolog's methods
// do nothing on a nil event, so a caller writes
//
//	l.Warn("refused a message").Str("peer", addr).Err(err).Msg("refused a message")
//
// whether or not the line is logged.
func (l *LogLimiter) Warn(kind string) *zerolog.Event {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.kinds[kind]
	if k == nil {
		k = &limited{start: now}
		l.kinds[kind] = k
	}
	if now.Sub(k.start) >= l.period {
		k.start, k.logged = now, 0
	}
	if k.logged < l.burst {
		k.logged++
		return l.log.Warn()
	}
	k.suppressed++
	if k.timer == nil && !l.closed {
		l.wg.Add(1)
		k.timer = time.AfterFunc(k.start.Add(l.period).Sub(now), func() {
			defer l.wg.Done()
			l.report(kind)
		})
	}
	return nil
}

// report logs the count of suppressed lines of kind, if any.
func (l *LogLimiter) report(kind string) {
	l.mu.Lock()
	k := l.kinds[kind]
	n := k.suppressed
	k.suppressed, k.timer = 0, nil
	l.mu.Unlock()
	l.line(kind, n)
}

func (l *LogLimiter) line(kind string, n int) {
	if n > 0 {
		l.log.Warn().Int("suppressed", n).Dur("period", l.period).Msgf("%s (%d similar suppressed)", kind, n)
	}
}

// Suppressed returns the number of lines of kind held back and not yet
// reported.
func (l *LogLimiter) Suppressed(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k := l.kinds[kind]; k != nil {
		return k.suppressed
	}
	return 0
}

// Close reports the suppressed lines of every kind now, stops the
// limiter's timers and waits for a report that is running. Later
// warnings are still limited, but their counts are reported only by the
// next Close.
func (l *LogLimiter) Close() {
	l.mu.Lock()
	l.closed = true
	pending := map[string]int{}
	for kind, k := range l.kinds {
		if k.timer != nil && k.timer.Stop() {
			l.wg.Done()
		}
		k.timer = nil
		if k.suppressed > 0 {
			pending[kind] = k.suppressed
			k.suppressed = 0
		}
	}
	l.mu.Unlock()
	l.wg.Wait()
	for kind, n := range pending {
		l.line(kind, n)
	}
}

package security_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/security"
)

// TestLogLimiterCountsWhatItHoldsBack: of a flood of one kind, the burst is
// logged and the rest reported as one counted line; other kinds keep their
// own burst.
func TestLogLimiterCountsWhatItHoldsBack(t *testing.T) {
	var log logBuf
	l := security.NewLogLimiter(zerolog.New(&log), 2, time.Hour)
	for i := range 7 {
		l.Warn("refused a message").Int("i", i).Msg("refused a message")
	}
	l.Warn("refused a connection").Msg("refused a connection")
	if got := strings.Count(log.String(), `"message":"refused a message"`); got != 2 {
		t.Errorf("%d lines of the flooded kind logged, want the burst of 2:\n%s", got, log.String())
	}
	if got := l.Suppressed("refused a message"); got != 5 {
		t.Errorf("Suppressed = %d, want 5", got)
	}
	if !strings.Contains(log.String(), `"message":"refused a connection"`) {
		t.Errorf("another kind was held back:\n%s", log.String())
	}
	l.Close()
	if !strings.Contains(log.String(), `"suppressed":5`) || !strings.Contains(log.String(), "refused a message (5 similar suppressed)") {
		t.Errorf("Close did not report the 5 suppressed lines:\n%s", log.String())
	}
	if l.Suppressed("refused a message") != 0 {
		t.Error("Close left a count behind")
	}
}

// TestLogLimiterReportsAtTheEndOfThePeriod: a flood that stops is reported
// when its period ends, without another line or a Close.
func TestLogLimiterReportsAtTheEndOfThePeriod(t *testing.T) {
	var log logBuf
	l := security.NewLogLimiter(zerolog.New(&log), 1, 20*time.Millisecond)
	defer l.Close()
	for range 4 {
		l.Warn("bad input").Msg("bad input")
	}
	if err := actortest.WaitFor(5*time.Second, func() bool {
		return strings.Contains(log.String(), "bad input (3 similar suppressed)")
	}); err != nil {
		t.Fatalf("no report of the 3 suppressed lines: %v:\n%s", err, log.String())
	}
	if l.Suppressed("bad input") != 0 {
		t.Error("the report left a count behind")
	}
}

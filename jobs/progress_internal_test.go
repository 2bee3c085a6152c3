package jobs

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
)

// An exec script's standard error: progress lines report, malformed ones
// are ignored with a reason, everything else is error output, lines cut
// anywhere by the pipe are put together, and a line too long to be a
// progress line is passed on.
func TestProgressWriterParsesLines(t *testing.T) {
	var got []float64
	var why []string
	ctx := withProgressSink(context.Background(), &progressSink{
		report:  func(f float64) { got = append(got, f) },
		ignored: func(reason string) { why = append(why, reason) },
	})
	var out strings.Builder
	w := &progressWriter{ctx: ctx, out: &out}
	long := "TROUPE_PROGRESS " + strings.Repeat("9", 2*maxLine) + "\n"
	for _, chunk := range []string{
		"TROUPE_PROGRESS 0.25\n", "TROUPE_PROG", "RESS 0.5\r\nwarning: x\n",
		"TROUPE_PROGRESS 1.5\n", "TROUPE_PROGRESS nan\n", "TROUPE_PROGRESS half\n", "TROUPE_PROGRESS\n", "TROUPE_PROGRESS 0.1 0.2\n",
		"TROUPE_PROGRESSIVE 0.3\n", long, "Traceback: boom\nTROUPE_PROGRESS 1",
	} {
		if n, err := w.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	w.close()
	if want := []float64{0.25, 0.5, 1}; !equalFloats(got, want) {
		t.Errorf("reported %v, want %v", got, want)
	}
	if len(why) != 5 {
		t.Fatalf("ignored %d lines (%q), want 5: out of range, nan, not a number, no number, two numbers", len(why), why)
	}
	for _, r := range why {
		if !strings.Contains(r, "TROUPE_PROGRESS 0.42") || !strings.Contains(r, "ignoring the line") {
			t.Errorf("reason %q does not say what is ignored and what the format is", r)
		}
	}
	want := "warning: x\nTROUPE_PROGRESSIVE 0.3\n" + long + "Traceback: boom\n"
	if out.String() != want {
		t.Errorf("error output %.200q, want %.200q", out.String(), want)
	}
}

func TestReportProgressRefusesWhatIsNoFraction(t *testing.T) {
	for _, f := range []float64{-0.01, 1.0001, math.NaN(), math.Inf(1)} {
		if err := ReportProgress(context.Background(), f); !errors.Is(err, ErrBadProgress) {
			t.Errorf("ReportProgress(%v) = %v, want ErrBadProgress", f, err)
		}
	}
	if err := ReportProgress(context.Background(), 0.5); err != nil {
		t.Errorf("without a progress function: %v, want nothing done", err)
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

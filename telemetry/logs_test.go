package telemetry_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/telemetry"
)

func TestLogBuffer(t *testing.T) {
	buf := telemetry.NewLogBuffer(3)
	root := zerolog.New(buf)
	a := root.With().Str("node", "a").Logger()
	b := root.With().Str("node", "b").Logger()
	for i := range 5 {
		a.Info().Int("i", i).Msg("on a")
	}
	b.Debug().Msg("on b")
	root.Warn().Msg("the process")
	b.Error().Msg("b failed")

	lines, truncated := buf.Lines("a", 10, zerolog.TraceLevel, 1<<20)
	got := string(bytes.Join(lines, []byte("\n")))
	// a keeps its last 3 lines; the process's line comes with them.
	for _, want := range []string{`"i":2`, `"i":3`, `"i":4`, "the process"} {
		if !strings.Contains(got, want) {
			t.Errorf("a's lines lack %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, `"i":1`) || strings.Contains(got, `"node":"b"`) || truncated {
		t.Errorf("a's lines hold an evicted line or b's, or are truncated (%v):\n%s", truncated, got)
	}
	if !strings.HasSuffix(got, `"message":"the process"}`) {
		t.Errorf("lines are not oldest first, or not trimmed:\n%s", got)
	}

	lines, _ = buf.Lines("b", 10, zerolog.InfoLevel, 1<<20)
	if len(lines) != 2 || !bytes.Contains(lines[1], []byte("b failed")) {
		t.Errorf("b's lines of info and above: %q", lines)
	}
	lines, _ = buf.Lines("b", 1, zerolog.TraceLevel, 1<<20)
	if len(lines) != 1 || !bytes.Contains(lines[0], []byte("b failed")) {
		t.Errorf("b's newest line: %q", lines)
	}
	lines, truncated = buf.Lines("a", 10, zerolog.TraceLevel, 70)
	if !truncated || len(lines) == 0 || len(lines) >= 4 {
		t.Errorf("lines within 70 bytes: %d lines, truncated %v", len(lines), truncated)
	}

	// A plain Write (not through a LevelWriter) reads the level.
	fmt.Fprintln(buf, `{"level":"debug","node":"c","message":"plain"}`)
	if lines, _ := buf.Lines("c", 10, zerolog.InfoLevel, 1<<20); len(lines) != 1 || bytes.Contains(lines[0], []byte("plain")) {
		t.Errorf("c's lines of info and above: %q (the debug line must be left out)", lines)
	}
}

// FuzzLogBuffer writes arbitrary lines (a logger may write anything) and
// checks that reading them back keeps its limits.
func FuzzLogBuffer(f *testing.F) {
	f.Add([]byte(`{"level":"info","node":"n1","message":"hi"}`), 3, 100)
	f.Add([]byte(`{"node":"`), 1, 1)
	f.Add([]byte(`"level":"nope","node":""`), 5, 0)
	f.Fuzz(func(t *testing.T, line []byte, limit, maxBytes int) {
		if limit < 1 || limit > 100 || maxBytes < 0 {
			return
		}
		buf := telemetry.NewLogBuffer(4)
		for range 3 {
			if n, err := buf.Write(line); err != nil || n != len(line) {
				t.Fatalf("Write: %d, %v", n, err)
			}
		}
		for _, node := range []string{"", "n1"} {
			lines, _ := buf.Lines(node, limit, zerolog.TraceLevel, maxBytes)
			size := 0
			for _, l := range lines {
				size += len(l)
			}
			if len(lines) > limit || size > maxBytes {
				t.Fatalf("%d lines of %d bytes; limits %d lines, %d bytes", len(lines), size, limit, maxBytes)
			}
		}
	})
}

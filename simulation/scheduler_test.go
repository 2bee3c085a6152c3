package simulation

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

func TestSchedulerRunsInTimeOrder(t *testing.T) {
	s := NewScheduler(1, nil)
	var got []time.Duration
	for _, d := range []time.Duration{30, 10, 20, 10} {
		s.At(d*time.Millisecond, KindAction, "", "", func() { got = append(got, s.Elapsed()) })
	}
	s.Run(25 * time.Millisecond)
	if want := []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}; !slices.Equal(got, want) {
		t.Fatalf("ran at %v, want %v", got, want)
	}
	if s.Elapsed() != 25*time.Millisecond {
		t.Fatalf("time is %v after Run(25ms)", s.Elapsed())
	}
	s.Run(time.Second)
	if len(got) != 4 || got[3] != 30*time.Millisecond {
		t.Fatalf("ran at %v; the 30ms event is missing", got)
	}
	if !s.Now().Equal(Epoch.Add(time.Second)) {
		t.Fatalf("Now is %v, want Epoch+1s", s.Now())
	}
}

// TestSchedulerSameInstantOrderFollowsTheSeed: events due at one instant
// run in an order drawn from the seed — the same for the same seed, another
// for another seed — and an event queued for "now" runs after the current
// one.
func TestSchedulerSameInstantOrderFollowsTheSeed(t *testing.T) {
	order := func(seed uint64) []int {
		s := NewScheduler(seed, nil)
		var got []int
		for i := range 20 {
			s.At(time.Millisecond, KindAction, "", "", func() {
				got = append(got, i)
				s.At(0, KindAction, "", "", func() { got = append(got, 100+i) })
			})
		}
		s.Run(time.Second)
		return got
	}
	a, b, c := order(1), order(1), order(2)
	if !slices.Equal(a, b) {
		t.Fatalf("seed 1 gave %v then %v", a, b)
	}
	if slices.Equal(a, c) {
		t.Fatalf("seeds 1 and 2 gave the same order %v", a)
	}
	if len(a) != 40 {
		t.Fatalf("%d events ran, want 40", len(a))
	}
	for i := range 20 {
		if slices.Index(a, i) > slices.Index(a, 100+i) {
			t.Fatalf("event %d's follow-up ran before it: %v", i, a)
		}
	}
}

func TestHandleStopCancels(t *testing.T) {
	s := NewScheduler(1, nil)
	ran := false
	h := s.At(time.Millisecond, KindTimer, "n", "", func() { ran = true })
	if !h.Stop() {
		t.Fatal("Stop of a pending event reported false")
	}
	if h.Stop() {
		t.Fatal("a second Stop reported true")
	}
	s.Run(time.Second)
	if ran || s.Events() != 0 {
		t.Fatalf("a cancelled event ran (events %d)", s.Events())
	}
	done := s.At(0, KindTimer, "n", "", func() {})
	s.Run(2 * time.Second)
	if done.Stop() {
		t.Fatal("Stop of an event that ran reported true")
	}
}

func TestTraceLinesAndHash(t *testing.T) {
	var out bytes.Buffer
	tr := NewTrace(&out)
	s := NewScheduler(1, tr)
	s.At(1500*time.Microsecond, KindTimer, "node-1", "", func() { tr.note(s.Elapsed(), "hello") })
	s.Run(time.Second)
	want := "        1500 timer node-1\n        1500 note hello\n"
	if out.String() != want {
		t.Fatalf("trace is %q, want %q", out.String(), want)
	}
	quiet := NewTrace(nil)
	quiet.event(1500*time.Microsecond, KindTimer, "node-1", "")
	quiet.note(1500*time.Microsecond, "hello")
	if quiet.Hash() != tr.Hash() || tr.Lines() != 2 {
		t.Fatalf("hash without output %s, with %s (%d lines)", quiet.Hash(), tr.Hash(), tr.Lines())
	}
}

func TestCryptoRandFollowsTheSeed(t *testing.T) {
	read := func(seed uint64) []byte {
		unbind := bindCryptoRand(seed)
		defer unbind()
		b := make([]byte, 16)
		if _, err := cryptoStreams.Read(b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := read(3), read(3), read(4)
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatalf("seed 3 read %x then %x, seed 4 %x", a, b, c)
	}
	unbind := bindCryptoRand(3)
	defer unbind()
	other := make(chan []byte)
	go func() { // not bound: the real source
		b := make([]byte, 16)
		_, _ = cryptoStreams.Read(b)
		other <- b
	}()
	if got := <-other; bytes.Equal(got, a) {
		t.Fatal("another goroutine read the simulation's seeded stream")
	}
}

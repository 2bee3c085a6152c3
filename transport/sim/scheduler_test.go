package sim_test

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/transport/sim"
)

// virtual is a minimal Config.Scheduler: callbacks run when the test says,
// in time order (then queueing order).
type virtual struct {
	now     time.Time
	pending []call
	seq     int
}

type call struct {
	at  time.Time
	seq int
	f   func()
}

func (v *virtual) Now() time.Time { return v.now }

func (v *virtual) AfterFunc(d time.Duration, f func()) {
	v.seq++
	v.pending = append(v.pending, call{at: v.now.Add(d), seq: v.seq, f: f})
}

// runAll runs every callback (and those they queue) in time order.
func (v *virtual) runAll() int {
	n := 0
	for len(v.pending) > 0 {
		sort.SliceStable(v.pending, func(i, j int) bool {
			if !v.pending[i].at.Equal(v.pending[j].at) {
				return v.pending[i].at.Before(v.pending[j].at)
			}
			return v.pending[i].seq < v.pending[j].seq
		})
		c := v.pending[0]
		v.pending = v.pending[1:]
		v.now = c.at
		c.f()
		n++
	}
	return n
}

func TestSchedulerDeliversOnlyFromItsCallbacks(t *testing.T) {
	v := &virtual{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	var fates []string
	h, err := sim.New(sim.Config{Seed: 1, Scheduler: v, Faults: sim.Faults{Latency: 5 * time.Millisecond},
		Observe: func(f sim.Fate, k sim.Key, b []byte) {
			fates = append(fates, fmt.Sprintf("%s>%s %s", k.From, k.To, f))
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	a, _ := attach(t, h, "a")
	_, b := attach(t, h, "b")
	for i := range uint64(3) {
		send(t, a, "a", "b", i)
	}
	send(t, a, "a", "a", 9) // to itself: no latency, still not inside Send
	if got := b.list(); len(got) != 0 {
		t.Fatalf("delivered inside Send, before any scheduler callback: %v", got)
	}
	start := v.now
	if n := v.runAll(); n == 0 {
		t.Fatal("the hub armed no callback")
	}
	if got, want := b.list(), []string{"a:0", "a:1", "a:2"}; !slices.Equal(got, want) {
		t.Fatalf("b got %v, want %v in order", got, want)
	}
	if d := v.now.Sub(start); d != 5*time.Millisecond {
		t.Fatalf("the last delivery came after %v of virtual time, want the 5ms latency", d)
	}
	want := []string{"a>b queued", "a>b queued", "a>b queued", "a>a queued", "a>a delivered", "a>b delivered", "a>b delivered", "a>b delivered"}
	if !slices.Equal(fates, want) {
		t.Fatalf("observed %v, want %v", fates, want)
	}
}

// TestSchedulerSameSeedSameFates: on virtual time the whole delivery order,
// holds released by HoldTimeout included, is a function of the seed.
func TestSchedulerSameSeedSameFates(t *testing.T) {
	trace := func(seed uint64) []string {
		v := &virtual{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
		var out []string
		h, err := sim.New(sim.Config{Seed: seed, Scheduler: v, Faults: sim.Faults{
			Loss: 0.2, Duplicate: 0.1, Reorder: 0.3, Latency: time.Millisecond, Jitter: 3 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		a, _ := attach(t, h, "a")
		_, b := attach(t, h, "b")
		for i := range uint64(200) {
			send(t, a, "a", "b", i)
			if i%50 == 49 {
				v.runAll() // idle links: held messages go by HoldTimeout
			}
		}
		v.runAll()
		out = append(out, b.list()...)
		return out
	}
	one, two, other := trace(7), trace(7), trace(8)
	if !slices.Equal(one, two) {
		t.Fatal("the same seed gave two delivery orders")
	}
	if slices.Equal(one, other) {
		t.Fatal("seeds 7 and 8 gave the same delivery order: the seed is not used")
	}
	if len(one) < 150 {
		t.Fatalf("only %d of 200 messages arrived at 20%% loss", len(one))
	}
}

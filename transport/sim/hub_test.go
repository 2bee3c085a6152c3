package sim_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
	"github.com/troupe-dev/troupe/transport/sim"
)

// sink records what one node receives.
type sink struct {
	mu  sync.Mutex
	got []string // "from:N"
}

func (s *sink) deliver(env *messages.Envelope, _ int) {
	m, err := transport.UnmarshalPayload(env)
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	s.got = append(s.got, fmt.Sprintf("%s:%d", env.From, m.(*messages.Ping).N))
	s.mu.Unlock()
}

func (s *sink) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func attach(t *testing.T, h *sim.Hub, name string) (transport.Endpoint, *sink) {
	t.Helper()
	s := &sink{}
	ep, err := h.Attach(transport.Attachment{Node: name, Deliver: s.deliver})
	if err != nil {
		t.Fatal(err)
	}
	return ep, s
}

func send(t *testing.T, ep transport.Endpoint, from, to string, n uint64) {
	t.Helper()
	env := &messages.Envelope{From: from, To: to, Protocol: "p"}
	if err := transport.MarshalPayload(env, &messages.Ping{N: n}); err != nil {
		t.Fatal(err)
	}
	if _, err := ep.Send(env); err != nil {
		t.Fatal(err)
	}
}

// run sends 300 messages from one sender to three receivers through every
// fault and returns what each receiver got, in order.
func run(t *testing.T, seed uint64) [][]string {
	h, err := sim.New(sim.Config{Seed: seed, HoldTimeout: time.Second, Faults: sim.Faults{
		Loss: 0.2, Duplicate: 0.1, Reorder: 0.3, ReorderDepth: 4, Latency: time.Millisecond, Jitter: time.Millisecond,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	a, _ := attach(t, h, "a")
	var sinks []*sink
	for _, name := range []string{"b", "c", "d"} {
		_, s := attach(t, h, name)
		sinks = append(sinks, s)
	}
	for i := range uint64(300) {
		for _, to := range []string{"b", "c", "d"} {
			send(t, a, "a", to, i)
		}
	}
	actortest.Eventually(t, 10*time.Second, "every surviving message delivered", func() bool {
		tot := h.Stats().Total(nil)
		return tot.Delivered == tot.Sent-tot.Lost+tot.Duplicated
	})
	out := make([][]string, len(sinks))
	for i, s := range sinks {
		out[i] = s.list()
	}
	return out
}

func TestSameSeedSameDeliveryOrder(t *testing.T) {
	first, again, other := run(t, 7), run(t, 7), run(t, 8)
	for i := range first {
		if !slices.Equal(first[i], again[i]) {
			t.Fatalf("receiver %d: seed 7 gave two different orders:\n%v\n%v", i, first[i], again[i])
		}
	}
	if slices.Equal(first[0], other[0]) {
		t.Fatal("seeds 7 and 8 gave the same order; the seed is not used")
	}
	inOrder := slices.IsSortedFunc(first[0], func(a, b string) int {
		var x, y int
		fmt.Sscanf(a, "a:%d", &x)
		fmt.Sscanf(b, "a:%d", &y)
		return x - y
	})
	if inOrder {
		t.Fatal("no reordering happened at Reorder 0.3")
	}
}

func TestBenignHubIsFIFOAndCounts(t *testing.T) {
	h, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	a, _ := attach(t, h, "a")
	_, b := attach(t, h, "b")
	for i := range uint64(100) {
		send(t, a, "a", "b", i)
	}
	got := b.list() // benign delivery is synchronous
	for i, v := range got {
		if v != fmt.Sprintf("a:%d", i) {
			t.Fatalf("message %d is %s; a benign hub is FIFO", i, v)
		}
	}
	row := h.Stats()[0]
	if row.From != "a" || row.To != "b" || row.Type != "troupe.examples.v1.Ping" || row.Sent != 100 || row.Delivered != 100 || row.SentBytes == 0 || row.SentBytes != row.DelivBytes {
		t.Fatalf("stats %+v", row)
	}
}

func TestPartitionsAndBlocks(t *testing.T) {
	h, _ := sim.New(sim.Config{})
	defer h.Close()
	a, sa := attach(t, h, "a")
	b, sb := attach(t, h, "b")
	c, sc := attach(t, h, "c")
	h.Partition([]string{"a"}) // a alone; b and c together
	send(t, a, "a", "b", 1)
	send(t, b, "b", "a", 2)
	send(t, b, "b", "c", 3)
	if len(sa.list())+len(sb.list()) != 0 || len(sc.list()) != 1 {
		t.Fatalf("partition leaked: a %v, b %v, c %v", sa.list(), sb.list(), sc.list())
	}
	h.Heal()
	h.Block("a", "b") // one way
	send(t, a, "a", "b", 4)
	send(t, b, "b", "a", 5)
	if len(sb.list()) != 0 || !slices.Equal(sa.list(), []string{"b:5"}) {
		t.Fatalf("one-way block: a %v, b %v", sa.list(), sb.list())
	}
	h.Heal()
	send(t, a, "a", "b", 6)
	send(t, c, "c", "c", 7) // a node always reaches itself
	if !slices.Equal(sb.list(), []string{"a:6"}) || !slices.Equal(sc.list(), []string{"b:3", "c:7"}) {
		t.Fatalf("after healing: b %v, c %v", sb.list(), sc.list())
	}
	if blocked := h.Stats().Total(nil).Blocked; blocked != 3 {
		t.Fatalf("%d messages counted as blocked, want 3", blocked)
	}
}

func TestHubRefusesBadInput(t *testing.T) {
	if _, err := sim.New(sim.Config{Faults: sim.Faults{Loss: 1.5}}); err == nil || err.Error() != "sim: Faults.Loss is 1.5; a probability must be in [0, 1]" {
		t.Fatalf("bad loss: %v", err)
	}
	h, _ := sim.New(sim.Config{})
	defer h.Close()
	a, _ := attach(t, h, "a")
	if _, err := h.Attach(transport.Attachment{Node: "a", Deliver: func(*messages.Envelope, int) {}}); !errors.Is(err, transport.ErrNameTaken) {
		t.Fatalf("second a: %v", err)
	}
	env := &messages.Envelope{From: "a", To: "ghost", Protocol: "p"}
	_ = transport.MarshalPayload(env, &messages.Ping{})
	if _, err := a.Send(env); !errors.Is(err, transport.ErrUnknownNode) {
		t.Fatalf("send to ghost: %v", err)
	}
	_ = a.Close()
	if _, err := a.Send(env); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if _, err := h.Attach(transport.Attachment{Node: "a", Deliver: func(*messages.Envelope, int) {}}); err != nil {
		t.Fatalf("a restarted node cannot attach again: %v", err)
	}
}

func BenchmarkHub(b *testing.B) {
	for _, c := range []struct {
		name   string
		faults sim.Faults
	}{
		{"benign", sim.Faults{}},
		{"lossy", sim.Faults{Loss: 0.1, Duplicate: 0.05}},
		{"delayed", sim.Faults{Latency: 50 * time.Microsecond, Reorder: 0.1}},
	} {
		b.Run(c.name, func(b *testing.B) {
			h, _ := sim.New(sim.Config{Seed: 1, Faults: c.faults})
			defer h.Close()
			ep, _ := h.Attach(transport.Attachment{Node: "a", Deliver: func(*messages.Envelope, int) {}})
			_, _ = h.Attach(transport.Attachment{Node: "b", Deliver: func(*messages.Envelope, int) {}})
			env := &messages.Envelope{From: "a", To: "b", Protocol: "p"}
			_ = transport.MarshalPayload(env, &messages.Ping{N: 1})
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := ep.Send(env); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			tot := h.Stats().Total(nil)
			b.ReportMetric(float64(tot.SentBytes)/float64(tot.Sent), "bytes/msg")
		})
	}
}

package actors

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// recorder stands for protoactor's actor context and for the host: it
// records what the mailbox hands it, in order.
type recorder struct {
	mu        sync.Mutex
	user      []any // through deliver
	invoked   []any // through InvokeUserMessage
	system    []any
	escalated []any
	panicOn   any
}

func (r *recorder) deliver(m any) {
	r.mu.Lock()
	r.user = append(r.user, m)
	boom := m == r.panicOn
	r.mu.Unlock()
	if boom {
		panic("handler failed")
	}
}

func (r *recorder) InvokeUserMessage(m any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.invoked = append(r.invoked, m)
}

func (r *recorder) InvokeSystemMessage(m any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.system = append(r.system, m)
}

func (r *recorder) EscalateFailure(_ any, m any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.escalated = append(r.escalated, m)
}

func (r *recorder) count() (user, invoked, system int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.user), len(r.invoked), len(r.system)
}

func newTestMailbox(throughput int) (*mailbox, *recorder) {
	r := &recorder{}
	m := &mailbox{deliver: r.deliver}
	m.RegisterHandlers(r, actor.NewDefaultDispatcher(throughput))
	return m, r
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(time.Millisecond) // polling cond with a deadline: package actors' own tests cannot import actortest, which imports actors
	}
}

type note struct{ sender, n int }

// Messages of one sender arrive in the order sent, each exactly once,
// while several senders post at once and the mailbox yields every few
// messages.
func TestMailboxKeepsEachSendersOrder(t *testing.T) {
	m, r := newTestMailbox(7)
	const senders, each = 4, 5000
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				m.PostUserMessage(note{s, i})
			}
		})
	}
	wg.Wait()
	waitUntil(t, "every message delivered", func() bool { u, _, _ := r.count(); return u == senders*each })
	next := make([]int, senders)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.user {
		n := x.(note)
		if n.n != next[n.sender] {
			t.Fatalf("sender %d: got message %d, want %d", n.sender, n.n, next[n.sender])
		}
		next[n.sender]++
	}
	if d := m.UserMessageCount(); d != 0 {
		t.Errorf("depth %d after every message ran, want 0", d)
	}
}

// A suspended mailbox runs system messages only; it counts the user
// messages that wait, and runs them in order once resumed.
func TestMailboxSuspendsUserMessages(t *testing.T) {
	m, r := newTestMailbox(300)
	m.PostSystemMessage(&actor.SuspendMailbox{})
	for i := range 3 {
		m.PostUserMessage(i)
	}
	m.PostSystemMessage(&actor.Restart{})
	waitUntil(t, "the system message ran", func() bool { _, _, s := r.count(); return s == 1 })
	if u, _, _ := r.count(); u != 0 {
		t.Fatalf("%d user messages ran while suspended", u)
	}
	if d := m.UserMessageCount(); d != 3 {
		t.Errorf("depth %d while suspended, want 3", d)
	}
	m.PostSystemMessage(&actor.ResumeMailbox{})
	waitUntil(t, "the user messages ran", func() bool { u, _, _ := r.count(); return u == 3 })
	r.mu.Lock()
	defer r.mu.Unlock()
	if fmt.Sprint(r.user) != "[0 1 2]" {
		t.Errorf("ran %v, want [0 1 2]", r.user)
	}
}

// A message that panics is escalated to the supervisor with the message;
// the ones behind it stay queued and run next.
func TestMailboxEscalatesAPanicAndKeepsTheRest(t *testing.T) {
	m, r := newTestMailbox(300)
	r.panicOn = 1
	for i := range 4 {
		m.PostUserMessage(i)
	}
	waitUntil(t, "the rest ran", func() bool { u, _, _ := r.count(); return u == 4 })
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.escalated) != 1 || r.escalated[0] != 1 {
		t.Errorf("escalated %v, want [1]", r.escalated)
	}
	if fmt.Sprint(r.user) != "[0 1 2 3]" {
		t.Errorf("ran %v, want [0 1 2 3]", r.user)
	}
}

// What only protoactor's actor context can handle goes to it: envelopes,
// auto-receive messages; and everything does when deliver is unset
// (protoactor's metrics on).
func TestMailboxLeavesProtoactorsMessagesToIt(t *testing.T) {
	m, r := newTestMailbox(300)
	m.PostUserMessage(&actor.MessageEnvelope{Message: 1})
	m.PostUserMessage(&actor.PoisonPill{})
	m.PostUserMessage(2)
	waitUntil(t, "all ran", func() bool { u, i, _ := r.count(); return u+i == 3 })
	if u, i, _ := r.count(); u != 1 || i != 2 {
		t.Errorf("delivered %d, invoked %d; want 1 and 2", u, i)
	}

	m2, r2 := newTestMailbox(300)
	m2.deliver = nil
	m2.PostUserMessage(3)
	waitUntil(t, "invoked", func() bool { _, i, _ := r2.count(); return i == 1 })
}

// After a flood the mailbox keeps at most keepFree segments for reuse;
// the rest go back to the garbage collector. Depth counts the flood while
// it waits.
func TestMailboxLetsAFloodGo(t *testing.T) {
	m, r := newTestMailbox(300)
	m.PostSystemMessage(&actor.SuspendMailbox{})
	const flood = 40 * segSize
	for i := range flood {
		m.PostUserMessage(i)
	}
	waitUntil(t, "suspended", func() bool { _, _, s := r.count(); return m.nsys.Load() == 0 && s == 0 })
	if d := m.UserMessageCount(); d != flood {
		t.Errorf("depth %d, want %d", d, flood)
	}
	m.PostSystemMessage(&actor.ResumeMailbox{})
	waitUntil(t, "the flood ran", func() bool { u, _, _ := r.count(); return u == flood })
	m.PostUserMessage(-1) // a take after the flood hands its segments back
	waitUntil(t, "one more ran", func() bool { u, _, _ := r.count(); return u == flood+1 })
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for s := m.free; s != nil; s = s.next {
		n++
	}
	if n != m.nfree || n > keepFree {
		t.Errorf("the mailbox keeps %d spent segments (counted %d), want at most %d", n, m.nfree, keepFree)
	}
}

package actors

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// mailbox is the actor.Mailbox of every protocol: protoactor's default
// semantics (system messages first, suspension while a protocol restarts,
// a turn of Dispatcher.Throughput messages before the goroutine yields)
// with a cheaper user queue. Senders append to a chain of fixed-size
// segments under a mutex; the protocol's goroutine takes the whole chain at
// once and runs its messages without locking, so the receiving side locks
// once per burst instead of once per message (protoactor's ring locks on
// every push and every pop), and a backlog grows by a segment at a time
// instead of by copying (docs/architecture.md, "Measurements").
type mailbox struct {
	mu         sync.Mutex
	head, tail *segment // user messages waiting for the next take
	posted     int      // messages in head..tail
	free       *segment // spent segments kept for reuse, at most keepFree
	nfree      int
	system     []any // system messages, rare: a restart, a stop

	nsys      atomic.Int32 // len(system), read without the lock
	running   atomic.Bool  // scheduled on the dispatcher, or running
	suspended atomic.Bool  // between SuspendMailbox and ResumeMailbox
	depth     atomic.Int32 // messages of the taken chain not yet run (approximate)

	// Owned by the goroutine running the mailbox: the taken chain.
	cur   *segment
	next  int      // index of the next message in cur
	left  int      // messages of the chain not yet run
	spent *segment // run segments, handed back to free at the next take

	// deliver, when set, handles the user messages Troupe posts; the
	// invoker (protoactor's actor context) gets the others.
	deliver    func(any)
	invoker    actor.MessageInvoker
	dispatcher actor.Dispatcher
	process    func() // processMessages, made once: a method value allocates
}

// segSize is the number of messages per segment (4 KiB on 64-bit).
const segSize = 255

type segment struct {
	msgs [segSize]any
	n    int
	next *segment
}

// keepFree bounds the spent segments a mailbox keeps: a flood's segments
// beyond it go back to the garbage collector.
const keepFree = 8

// depthEvery is how often, in messages, a running chain updates depth.
const depthEvery = 64

func (m *mailbox) PostUserMessage(msg any) {
	// protoactor unpacks a MessageBatch into its messages and posts the
	// batch too; the default mailbox does, and so does this one.
	if b, ok := msg.(actor.MessageBatch); ok {
		for _, x := range b.GetMessages() {
			m.PostUserMessage(x)
		}
	}
	if env, ok := msg.(*actor.MessageEnvelope); ok {
		if b, ok := env.Message.(actor.MessageBatch); ok {
			for _, x := range b.GetMessages() {
				m.PostUserMessage(x)
			}
		}
	}
	m.mu.Lock()
	t := m.tail
	if t == nil || t.n == segSize {
		s := m.free
		if s != nil {
			m.free, s.next = s.next, nil
			m.nfree--
		} else {
			s = &segment{}
		}
		if t == nil {
			m.head = s
		} else {
			t.next = s
		}
		m.tail, t = s, s
	}
	t.msgs[t.n] = msg
	t.n++
	m.posted++
	m.mu.Unlock()
	m.schedule()
}

func (m *mailbox) PostSystemMessage(msg any) {
	m.mu.Lock()
	m.system = append(m.system, msg)
	m.nsys.Add(1)
	m.mu.Unlock()
	m.schedule()
}

func (m *mailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker, m.dispatcher = invoker, dispatcher
	m.process = m.processMessages
}

func (m *mailbox) Start() {}

// UserMessageCount is the mailbox's depth: exact while the protocol is
// idle, within depthEvery messages while it runs a batch.
func (m *mailbox) UserMessageCount() int {
	m.mu.Lock()
	n := m.posted
	m.mu.Unlock()
	return n + int(m.depth.Load())
}

// schedule hands the mailbox to the dispatcher unless it runs already.
// The load spares the compare-and-swap while the protocol is busy: if it
// sees running, the run's final check (processMessages) sees the message.
func (m *mailbox) schedule() {
	if !m.running.Load() && m.running.CompareAndSwap(false, true) {
		m.dispatcher.Schedule(m.process)
	}
}

func (m *mailbox) processMessages() {
	growStack(0)
	for {
		m.run()
		// The run's state belongs to whoever runs the mailbox next, maybe
		// another goroutine as soon as running is false: read it first.
		taken := m.left > 0
		m.running.Store(false)
		if !m.pending(taken) || !m.running.CompareAndSwap(false, true) {
			return
		}
	}
}

// stackReserve is the stack growStack makes room for: enough for a
// handler's usual depth (the runtime's frames, a handler, an encoding, a
// send to protoactor's remote).
const stackReserve = 7 << 10

// growStack grows the goroutine's stack to hold stackReserve more bytes,
// while it is shallow. The default dispatcher runs each mailbox turn on a
// new goroutine, whose stack starts small; a handler's path (the mailbox,
// the host, the handler, an encoding, a send) outgrew it on every turn,
// and the runtime's copy of a deep stack walks and adjusts every frame:
// on a local round trip, where every message starts a turn, that copy took
// most of the CPU (docs/architecture.md, "Like for like"). Grown here,
// with two frames to adjust, it costs zeroing the frame.
//
//go:noinline
func growStack(i int) byte {
	var b [stackReserve]byte // read at a run-time index: kept in the frame
	return b[i%stackReserve]
}

// pending reports whether there is work for another run: a system
// message, or user messages (taken ones included) while not suspended.
func (m *mailbox) pending(taken bool) bool {
	if m.nsys.Load() > 0 {
		return true
	}
	if m.suspended.Load() {
		return false
	}
	if taken {
		return true
	}
	m.mu.Lock()
	n := m.posted
	m.mu.Unlock()
	return n > 0
}

func (m *mailbox) run() {
	var msg any
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	i, t := 0, m.dispatcher.Throughput()
	for {
		if i > t {
			i = 0
			runtime.Gosched()
		}
		i++
		if m.nsys.Load() > 0 {
			msg = m.takeSystem()
			switch msg.(type) {
			case *actor.SuspendMailbox:
				m.suspended.Store(true)
			case *actor.ResumeMailbox:
				m.suspended.Store(false)
			default:
				m.invoker.InvokeSystemMessage(msg)
			}
			continue
		}
		if m.suspended.Load() {
			return
		}
		if m.left == 0 && !m.take() {
			return
		}
		if m.next == m.cur.n {
			s := m.cur
			m.cur, m.next = s.next, 0
			s.n, s.next, m.spent = 0, m.spent, s
		}
		msg = m.cur.msgs[m.next]
		m.cur.msgs[m.next] = nil
		m.next++
		m.left--
		if m.left%depthEvery == 0 {
			m.depth.Store(int32(m.left))
		}
		m.invokeUser(msg)
	}
}

// invokeUser hands a user message to the protocol. protoactor's actor
// context would time it for protoactor's metrics (when on), unwrap a
// MessageEnvelope, handle PoisonPill and other auto-receive messages, and
// run context middleware; Troupe's own messages need none of that, so they
// go to the host directly, which halves the cost of a local message
// (BenchmarkLocalDelivery).
func (m *mailbox) invokeUser(msg any) {
	if m.deliver == nil {
		m.invoker.InvokeUserMessage(msg)
		return
	}
	switch msg.(type) {
	case *actor.MessageEnvelope, actor.AutoReceiveMessage, actor.SystemMessage:
		m.invoker.InvokeUserMessage(msg)
	default:
		m.deliver(msg)
	}
}

func (m *mailbox) takeSystem() any {
	m.mu.Lock()
	msg := m.system[0]
	m.system[0] = nil
	m.system = m.system[1:]
	m.nsys.Add(-1)
	m.mu.Unlock()
	return msg
}

// take hands the spent segments back and takes the posted chain, and
// reports whether it held any message.
func (m *mailbox) take() bool {
	spent := m.spent
	if m.cur != nil { // run to its end: spent too
		m.cur.n, m.cur.next, spent = 0, spent, m.cur
	}
	m.spent, m.cur = nil, nil
	m.mu.Lock()
	for spent != nil && m.nfree < keepFree {
		s := spent
		spent = s.next
		s.next, m.free = m.free, s
		m.nfree++
	}
	m.cur, m.left = m.head, m.posted
	m.head, m.tail, m.posted = nil, nil, 0
	m.mu.Unlock()
	m.next = 0
	m.depth.Store(int32(max(m.left-1, 0))) // the first runs now
	return m.left > 0
}

package sim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// Config sets up a [Hub].
type Config struct {
	// Seed drives every random choice of the hub (loss, duplication,
	// reordering, jitter). The same seed and the same sequence of sends give
	// the same choices.
	Seed uint64
	// Faults apply to every link that has no faults of its own
	// ([Hub.SetLinkFaults]). The zero value is a benign FIFO network.
	Faults Faults
	// HoldTimeout releases a message held back by the Reorder fault when its
	// link stays idle that long. 0 means 20ms.
	HoldTimeout time.Duration
	// Scheduler, when set, runs the hub on virtual time, for a
	// deterministic simulation: the hub starts no goroutine, reads the time
	// from the Scheduler, and delivers every envelope — also one without
	// delay — from a callback it arms with Scheduler.AfterFunc, never
	// from inside Send. nil runs the hub on the wall clock.
	Scheduler Scheduler
	// Observe, when set, is told the fate of every envelope (not memberlist
	// traffic) as it happens: a simulation's trace. It runs with the hub's
	// lock held and must not call the hub; b is the encoded envelope and
	// must not be kept or changed.
	Observe func(f Fate, k Key, b []byte)
}

// Scheduler is the virtual time of a simulation ([Config.Scheduler]).
type Scheduler interface {
	Now() time.Time
	// AfterFunc calls f once after d of virtual time. The hub calls it with
	// its lock held, so it must not run f before it returns.
	AfterFunc(d time.Duration, f func())
}

// Fate is what the hub did with one envelope ([Config.Observe]).
type Fate uint8

// The fates of an envelope. An envelope sent is Lost, Blocked, Held
// (Reorder) or Queued; Duplicated tells that it will be delivered twice; a
// delivered copy is Delivered, or Down when its receiver is detached by
// then.
const (
	Queued Fate = iota
	Lost
	Blocked
	Held
	Duplicated
	Delivered
	Down
)

func (f Fate) String() string {
	switch f {
	case Queued:
		return "queued"
	case Lost:
		return "lost"
	case Blocked:
		return "blocked"
	case Held:
		return "held"
	case Duplicated:
		return "duplicated"
	case Delivered:
		return "delivered"
	case Down:
		return "down"
	}
	return fmt.Sprintf("Fate(%d)", uint8(f))
}

// Hub is an in-process network: every node attached to it can send to every
// other, through the faults configured per link. It marshals each envelope on
// send and unmarshals each delivered copy, so nodes share no memory, and it
// counts messages and bytes per link, protocol and message type.
//
// Order: messages of one direction of a link are delivered in the order they
// were sent unless the Reorder fault holds one back; Latency and Jitter delay
// a link without reordering it. Every random choice is drawn, in a fixed
// order, when a message is sent, so a single sender's messages meet the same
// fate in every run with the same seed. (A held message is released by the
// next ReorderDepth messages of its link, or by HoldTimeout if the link goes
// idle first; only the latter depends on timing.)
type Hub struct {
	holdTimeout time.Duration
	sched       Scheduler                     // nil: wall clock and the run goroutine
	observe     func(f Fate, k Key, b []byte) // nil: no observer
	armed       bool                          // sched: a fire is pending
	armedAt     time.Time                     // sched: when it runs

	mu         sync.Mutex
	rng        *rand.Rand
	faults     Faults
	linkFaults map[link]Faults
	blocked    map[link]bool
	groups     map[string]int // partition group of each named node
	partition  bool
	endpoints  map[string]*endpoint // live endpoints
	known      map[string]bool      // every name ever attached
	links      map[link]*linkState
	stats      map[Key]*Counters
	queue      deliveryQueue
	seq        uint64
	closed     bool
	ml         memberlists // memberlist transports and their streams (memberlist.go)

	wake chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

var _ transport.Network = (*Hub)(nil)

type link struct{ from, to string }

type linkState struct {
	last     time.Time // when the latest scheduled message of the link is due
	inflight int       // scheduled, not yet delivered
	held     []*held
}

// port tells which receiver of a node a message is for. Both receivers of a
// node share its name, so faults, partitions and links apply to both alike.
type port uint8

const (
	toEndpoint   port = iota // the endpoint attached with [Hub.Attach]: an encoded envelope
	toMemberlist             // the node's [MemberlistTransport]: a raw memberlist packet
)

type held struct {
	bytes     []byte
	key       Key
	port      port
	copies    int
	remaining int // later messages still to overtake it
}

type delivery struct {
	at      time.Time
	seq     uint64
	link    link
	bytes   []byte
	key     Key
	port    port
	release *held // a HoldTimeout event instead of a delivery
}

// New starts a hub. Close stops it.
func New(cfg Config) (*Hub, error) {
	if err := cfg.Faults.Validate(); err != nil {
		return nil, err
	}
	if cfg.HoldTimeout < 0 {
		return nil, fmt.Errorf("sim: Config.HoldTimeout is %v; it must be 0 (default 20ms) or more", cfg.HoldTimeout)
	}
	if cfg.HoldTimeout == 0 {
		cfg.HoldTimeout = 20 * time.Millisecond
	}
	h := &Hub{
		holdTimeout: cfg.HoldTimeout,
		sched:       cfg.Scheduler,
		observe:     cfg.Observe,
		rng:         rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		faults:      cfg.Faults,
		linkFaults:  map[link]Faults{},
		blocked:     map[link]bool{},
		endpoints:   map[string]*endpoint{},
		known:       map[string]bool{},
		links:       map[link]*linkState{},
		stats:       map[Key]*Counters{},
		ml:          newMemberlists(),
		wake:        make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
	if h.sched == nil {
		h.wg.Add(1)
		go h.run()
	}
	return h, nil
}

// Attach joins a node. The name must be valid and not attached already; a
// name may attach again after its endpoint closed (a restarted node).
func (h *Hub) Attach(a transport.Attachment) (transport.Endpoint, error) {
	if err := transport.ValidateName("node", a.Node); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if a.Deliver == nil {
		return nil, fmt.Errorf("sim: attaching %s: Attachment.Deliver is nil", a.Node)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("sim: attaching %s: %w", a.Node, transport.ErrClosed)
	}
	if _, ok := h.endpoints[a.Node]; ok {
		return nil, fmt.Errorf("sim: %w: %s", transport.ErrNameTaken, a.Node)
	}
	ep := &endpoint{hub: h, name: a.Node, deliver: a.Deliver}
	h.endpoints[a.Node] = ep
	h.known[a.Node] = true
	return ep, nil
}

// SetFaults replaces the faults of every link that has none of its own.
func (h *Hub) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	h.mu.Lock()
	h.faults = f
	h.mu.Unlock()
	return nil
}

// SetLinkFaults sets the faults of the direction from → to only.
func (h *Hub) SetLinkFaults(from, to string, f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	h.mu.Lock()
	h.linkFaults[link{from, to}] = f
	h.mu.Unlock()
	return nil
}

// ClearLinkFaults makes every link use the hub-wide faults again.
func (h *Hub) ClearLinkFaults() {
	h.mu.Lock()
	clear(h.linkFaults)
	h.mu.Unlock()
}

// Partition splits the nodes into groups that cannot reach each other, both
// ways. Nodes named in no group form one more group together. It replaces
// any earlier partition; one-way blocks stay.
func (h *Hub) Partition(groups ...[]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.groups = map[string]int{}
	for i, g := range groups {
		for _, n := range g {
			h.groups[n] = i + 1
		}
	}
	h.partition = true
	h.cutStreams()
}

// Block drops every message from → to (a one-way partition).
func (h *Hub) Block(from, to string) {
	h.mu.Lock()
	h.blocked[link{from, to}] = true
	h.cutStreams()
	h.mu.Unlock()
}

// Unblock lifts a one-way block.
func (h *Hub) Unblock(from, to string) {
	h.mu.Lock()
	delete(h.blocked, link{from, to})
	h.mu.Unlock()
}

// Heal lifts every partition and one-way block.
func (h *Hub) Heal() {
	h.mu.Lock()
	h.partition = false
	h.groups = nil
	clear(h.blocked)
	h.mu.Unlock()
}

// Stats returns a snapshot of the accounting.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	s := make(Stats, 0, len(h.stats))
	for k, c := range h.stats {
		s = append(s, Row{k, *c})
	}
	h.mu.Unlock()
	sortRows(s)
	return s
}

// Close stops the hub: pending deliveries are dropped, every endpoint is
// closed and every memberlist transport shut down (which closes its
// streams). It returns when the hub's goroutine has exited.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	for _, ep := range h.endpoints {
		ep.closed = true
	}
	clear(h.endpoints)
	for _, t := range h.ml.transports {
		t.shutdown()
	}
	h.mu.Unlock()
	close(h.done)
	h.wg.Wait()
	return nil
}

func (h *Hub) counters(k Key) *Counters {
	c := h.stats[k]
	if c == nil {
		c = &Counters{}
		h.stats[k] = c
	}
	return c
}

// isBlocked reports whether l is cut by a partition or block. Caller holds mu.
func (h *Hub) isBlocked(l link) bool {
	if l.from == l.to {
		return false
	}
	if h.blocked[l] {
		return true
	}
	return h.partition && h.groups[l.from] != h.groups[l.to]
}

func (h *Hub) faultsOf(l link) Faults {
	if l.from == l.to {
		return Faults{}
	}
	if f, ok := h.linkFaults[l]; ok {
		return f
	}
	return h.faults
}

func keyOf(env *messages.Envelope) Key {
	typ := env.Type
	if env.Kind == messages.Envelope_KIND_ACK {
		typ = "ack"
	}
	return Key{From: env.From, To: env.To, Protocol: env.Protocol, Type: typ}
}

// send encodes an envelope and hands it to transmit.
func (h *Hub) send(from *endpoint, env *messages.Envelope) (int, error) {
	b, err := transport.Encode(env)
	if err != nil {
		return 0, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if from.closed {
		return 0, fmt.Errorf("sim: %s sending to %s: %w", from.name, env.To, transport.ErrClosed)
	}
	if !h.known[env.To] {
		return 0, fmt.Errorf("sim: %w: %q (attached nodes: %d)", transport.ErrUnknownNode, env.To, len(h.endpoints))
	}
	h.transmit(link{env.From, env.To}, b, keyOf(env), toEndpoint)
	return len(b), nil
}

// transmit runs the fault model for one message of l, for port p of l.to.
// Every random number is drawn whatever the outcome, so the stream of
// choices depends only on the sequence of sends. Caller holds mu.
func (h *Hub) transmit(l link, b []byte, key Key, p port) {
	c := h.counters(key)
	c.Sent++
	c.SentBytes += int64(len(b))

	f := h.faultsOf(l)
	lossDraw, dupDraw, reorderDraw := h.rng.Float64(), h.rng.Float64(), h.rng.Float64()
	depth := 1 + h.rng.IntN(f.depth())
	var jitter time.Duration
	if f.Jitter > 0 {
		jitter = time.Duration(h.rng.Int64N(int64(f.Jitter)))
	}
	if h.isBlocked(l) {
		c.Blocked++
		h.observed(Blocked, key, b, p)
		return
	}
	if lossDraw < f.Loss {
		c.Lost++
		h.observed(Lost, key, b, p)
		return
	}
	copies := 1
	if dupDraw < f.Duplicate {
		copies = 2
		c.Duplicated++
		h.observed(Duplicated, key, b, p)
	}
	ls := h.links[l]
	if ls == nil {
		ls = &linkState{}
		h.links[l] = ls
	}
	delay := f.Latency + jitter
	now := h.now()
	if reorderDraw < f.Reorder {
		c.Reordered++
		h.observed(Held, key, b, p)
		hm := &held{bytes: b, key: key, port: p, copies: copies, remaining: depth}
		ls.held = append(ls.held, hm)
		h.push(&delivery{at: now.Add(h.holdTimeout), link: l, release: hm})
		return
	}
	h.observed(Queued, key, b, p)
	h.schedule(l, ls, b, key, p, copies, now, delay)
	kept := ls.held[:0]
	for _, hm := range ls.held {
		if hm.remaining--; hm.remaining == 0 {
			h.schedule(l, ls, hm.bytes, hm.key, hm.port, hm.copies, now, delay)
		} else {
			kept = append(kept, hm)
		}
	}
	clear(ls.held[len(kept):])
	ls.held = kept
}

// schedule delivers now when the link has nothing in flight and no delay,
// else queues the copies behind the link's last message. Caller holds mu.
func (h *Hub) schedule(l link, ls *linkState, b []byte, key Key, p port, copies int, now time.Time, delay time.Duration) {
	if delay == 0 && ls.inflight == 0 && h.sched == nil {
		for range copies {
			h.deliver(l, b, key, p)
		}
		return
	}
	at := now.Add(delay)
	if at.Before(ls.last) {
		at = ls.last
	}
	ls.last = at
	for range copies {
		ls.inflight++
		h.push(&delivery{at: at, link: l, bytes: b, key: key, port: p})
	}
}

// deliver decodes a fresh copy and hands it to the receiver. Caller holds mu;
// Deliver callbacks only enqueue, and memberlist packets go to a buffered
// channel without blocking, so calling them under the lock keeps each link in
// order without a queue per link.
func (h *Hub) deliver(l link, b []byte, key Key, p port) {
	c := h.counters(key)
	if p == toMemberlist {
		h.deliverPacket(l, b, c)
		return
	}
	ep := h.endpoints[l.to]
	if ep == nil {
		c.Down++
		h.observed(Down, key, b, p)
		return
	}
	h.observed(Delivered, key, b, p)
	env, err := transport.Decode(b)
	if err != nil { // cannot happen: the hub encoded it
		panic(fmt.Sprintf("sim: hub failed to decode its own encoding: %v", err))
	}
	c.Delivered++
	c.DelivBytes += int64(len(b))
	ep.deliver(env, len(b))
}

func (h *Hub) push(d *delivery) {
	h.seq++
	d.seq = h.seq
	heap.Push(&h.queue, d)
	if h.sched != nil {
		h.arm()
		return
	}
	if h.queue[0] == d {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

// now is the hub's time: the Scheduler's, else the wall clock.
func (h *Hub) now() time.Time {
	if h.sched != nil {
		return h.sched.Now()
	}
	return time.Now()
}

func (h *Hub) observed(f Fate, k Key, b []byte, p port) {
	if h.observe != nil && p == toEndpoint {
		h.observe(f, k, b)
	}
}

// arm makes sure a fire is pending for the head of the queue (Scheduler
// mode). A fire that finds nothing due does nothing. Caller holds mu.
func (h *Hub) arm() {
	if len(h.queue) == 0 || h.closed {
		return
	}
	at := h.queue[0].at
	if h.armed && !h.armedAt.After(at) {
		return
	}
	h.armed, h.armedAt = true, at
	h.sched.AfterFunc(max(at.Sub(h.sched.Now()), 0), h.fire)
}

// fire delivers what is due and arms the next fire (Scheduler mode).
func (h *Hub) fire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	now := h.sched.Now()
	if h.armed && !h.armedAt.After(now) {
		h.armed = false
	}
	h.deliverDue(now)
	h.arm()
}

// deliverDue delivers the queued messages due by now. Caller holds mu.
func (h *Hub) deliverDue(now time.Time) {
	for len(h.queue) > 0 && !h.queue[0].at.After(now) {
		d := heap.Pop(&h.queue).(*delivery)
		ls := h.links[d.link]
		if d.release != nil {
			if i := indexOf(ls.held, d.release); i >= 0 {
				ls.held = append(ls.held[:i], ls.held[i+1:]...)
				f := h.faultsOf(d.link)
				h.schedule(d.link, ls, d.release.bytes, d.release.key, d.release.port, d.release.copies, now, f.Latency)
			}
			continue
		}
		ls.inflight--
		h.deliver(d.link, d.bytes, d.key, d.port)
	}
}

// run delivers queued messages when they are due. It is the hub's only
// goroutine (none in Scheduler mode); Close stops it.
func (h *Hub) run() {
	defer h.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		h.mu.Lock()
		now := time.Now()
		h.deliverDue(now)
		wait := time.Duration(-1)
		if len(h.queue) > 0 {
			wait = h.queue[0].at.Sub(now)
		}
		h.mu.Unlock()
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-h.done:
			return
		case <-h.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func indexOf(hs []*held, x *held) int {
	for i, hm := range hs {
		if hm == x {
			return i
		}
	}
	return -1
}

type endpoint struct {
	hub     *Hub
	name    string
	deliver transport.Deliver
	closed  bool // guarded by hub.mu
}

func (e *endpoint) Send(env *messages.Envelope) (int, error) { return e.hub.send(e, env) }

// Outbox sends each envelope at once: the hub schedules, drops and counts
// every envelope on its own.
func (e *endpoint) Outbox(protocol string) transport.Outbox {
	return outbox{e, protocol}
}

type outbox struct {
	ep       *endpoint
	protocol string
}

func (o outbox) Send(env *messages.Envelope) (int, error) { return o.ep.hub.send(o.ep, env) }

func (o outbox) SendMessage(to string, m any) (int, error) {
	env := &messages.Envelope{From: o.ep.name, To: to, Protocol: o.protocol}
	if err := transport.MarshalPayload(env, m); err != nil {
		return 0, err
	}
	return o.ep.hub.send(o.ep, env)
}

func (outbox) Flush() {}

func (e *endpoint) Address() string { return "sim://" + e.name }

func (e *endpoint) Close() error {
	h := e.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	if h.endpoints[e.name] == e {
		delete(h.endpoints, e.name)
	}
	return nil
}

type deliveryQueue []*delivery

func (q deliveryQueue) Len() int { return len(q) }
func (q deliveryQueue) Less(i, j int) bool {
	if q[i].at.Equal(q[j].at) {
		return q[i].seq < q[j].seq
	}
	return q[i].at.Before(q[j].at)
}
func (q deliveryQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *deliveryQueue) Push(x any)   { *q = append(*q, x.(*delivery)) }
func (q *deliveryQueue) Pop() any {
	old := *q
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return d
}

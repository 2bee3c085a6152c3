package membership

import (
	"container/list"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/transport"
)

// Frame kinds: the first byte of every user message this package puts in
// memberlist packets (the high nibble is the format's version).
const (
	kindDatagram byte = 0x11
	kindGossip   byte = 0x12
)

// Sizes that bound the frames (docs in doc.go, "Datagrams and gossip").
const (
	// maxNameLen is transport.ValidateName's bound on node and protocol
	// names: a name's length fits in one byte.
	maxNameLen = 253
	// datagramHeader is a datagram frame's header: its kind. The
	// protocol is in the envelope it carries; the sender passes it to
	// SendDatagram for the accounting only.
	datagramHeader = 1
	// gossipHeader is the largest broadcast frame header: kind, origin
	// (length-prefixed), boot nonce, sequence number, protocol
	// (length-prefixed).
	gossipHeader = 1 + 1 + maxNameLen + 8 + 8 + 1 + maxNameLen
	// BroadcastLimit is the largest encoded envelope Broadcast takes: 512
	// bytes. A frame (at most gossipHeader+512 = 1037 bytes, with
	// memberlist's 3 bytes per piggybacked message 1040) then fits in a
	// gossip packet (UDPBufferSize 1400 less memberlist's compound header
	// and encryption: 1353) with at least 313 bytes left for memberlist's
	// own messages, and about 800 with names of ordinary length.
	BroadcastLimit = 512
	// userMsgOverhead is memberlist's user-message type byte.
	userMsgOverhead = 1
	// crcOverhead is memberlist's checksum header on packets to members of
	// protocol version 5 and later.
	crcOverhead = 5
	// maxEncryptOverhead is memberlist's largest encryption overhead
	// (encryption version 0: version, IV, padding and tag).
	maxEncryptOverhead = 45
)

// datagramLimitOf is the largest encoded envelope a datagram takes under
// memberlist configuration c: UDPBufferSize less memberlist's user-message
// byte, checksum, label and encryption overheads, and the frame's kind.
func datagramLimitOf(c *memberlist.Config) int {
	n := c.UDPBufferSize - userMsgOverhead - crcOverhead - datagramHeader
	if c.Label != "" {
		n -= 2 + len(c.Label)
	}
	if c.EncryptionEnabled() {
		n -= maxEncryptOverhead
	}
	return n
}

// packets is a Membership's transport.Packets: datagrams with memberlist's
// SendBestEffort, broadcasts piggybacked on its gossip (doc.go). Safe for
// concurrent use.
type packets struct {
	m             *Membership
	ml            atomic.Pointer[memberlist.Memberlist] // set once memberlist runs
	handler       atomic.Pointer[transport.PacketHandler]
	datagramLimit int
	queueLimit    int
	nonce         uint64 // this run's boot nonce
	seq           atomic.Uint64

	// qmu serialises the queue's QueueBroadcast+Prune and GetBroadcasts,
	// so that Finished knows whether a prune called it.
	qmu     sync.Mutex
	queue   *memberlist.TransmitLimitedQueue
	pruning bool
	pruned  []string // protocols of the frames the running prune dropped

	dedupe *dedupe

	datagramsSent, datagramsReceived atomic.Int64
	broadcasts, transmissions        atomic.Int64
	transmittedBytes, relays         atomic.Int64
	duplicates, dropped, delivered   atomic.Int64
	refused                          [numRefusals]atomic.Int64
}

// Reasons a user packet is refused (troupe_swim_user_packets_refused_total).
const (
	refusedKind      = iota // an unknown frame kind
	refusedTruncated        // shorter than its header says
	refusedOversized        // over the frame's limit
	refusedName             // an origin or protocol that is not a name
	refusedNoHandler        // valid, but no Handle call yet
	numRefusals
)

var refusalNames = [numRefusals]string{"unknown_kind", "truncated", "oversized", "bad_name", "no_handler"}

var _ transport.Packets = (*packets)(nil)

func newPackets(m *Membership, c *memberlist.Config, b Broadcasts) *packets {
	b = b.withDefaults()
	p := &packets{
		m:             m,
		datagramLimit: datagramLimitOf(c),
		queueLimit:    b.QueueLimit,
		nonce:         rand.Uint64(),
		dedupe:        newDedupe(b.DedupeWindow, b.Origins),
	}
	p.queue = &memberlist.TransmitLimitedQueue{NumNodes: p.numNodes, RetransmitMult: c.RetransmitMult}
	return p
}

// numNodes is the live member count (self included), 1 before memberlist
// runs.
func (p *packets) numNodes() int {
	if ml := p.ml.Load(); ml != nil {
		return max(ml.NumMembers(), 1)
	}
	return 1
}

// Packets is this node's datagram and gossip service (one value per
// Membership, safe for concurrent use); doc.go's "Datagrams and gossip"
// says what it guarantees and what it does not.
func (m *Membership) Packets() transport.Packets { return m.pk }

// Limits are the largest encoded envelopes SendDatagram and Broadcast take:
// the datagram limit is memberlist's UDPBufferSize (1400) less its
// overheads and the frame's (datagramLimitOf: 1393 bytes without gossip
// keys, 1348 with), the broadcast limit [BroadcastLimit].
func (p *packets) Limits() (datagram, broadcast int) { return p.datagramLimit, BroadcastLimit }

// Handle sets who is told of the traffic, replacing any earlier handler.
func (p *packets) Handle(h transport.PacketHandler) { p.handler.Store(&h) }

func (p *packets) closed() bool {
	select {
	case <-p.m.done:
		return true
	default:
		return false
	}
}

// SendDatagram frames b (kind, protocol, b) and sends it to the live member
// `to` with memberlist's SendBestEffort.
func (p *packets) SendDatagram(to, protocol string, b []byte) error {
	if p.closed() {
		return fmt.Errorf("membership: node %s: datagram to %s: %w", p.m.cfg.Name, to, transport.ErrClosed)
	}
	if err := transport.ValidateName("protocol", protocol); err != nil {
		return fmt.Errorf("membership: datagram: %w", err)
	}
	if len(b) > p.datagramLimit {
		return fmt.Errorf("%w: datagram of protocol %s to %s is %d bytes; the limit is %d (memberlist's UDP buffer less its and the frame's overheads)",
			transport.ErrTooLarge, protocol, to, len(b), p.datagramLimit)
	}
	node, err := p.m.liveNode(to)
	if err != nil {
		return err
	}
	frame := make([]byte, 0, datagramHeader+len(b))
	frame = append(frame, kindDatagram)
	frame = append(frame, b...)
	ml := p.ml.Load()
	if ml == nil {
		return fmt.Errorf("membership: node %s: datagram to %s: %w", p.m.cfg.Name, to, transport.ErrClosed)
	}
	if err := ml.SendBestEffort(&node, frame); err != nil {
		if p.closed() {
			return fmt.Errorf("membership: node %s: datagram to %s: %w", p.m.cfg.Name, to, transport.ErrClosed)
		}
		return fmt.Errorf("membership: node %s: datagram to %s: %w", p.m.cfg.Name, to, err)
	}
	p.datagramsSent.Add(1)
	if h := p.handler.Load(); h != nil && h.Transmitted != nil {
		h.Transmitted(transport.Datagram, protocol, len(frame)+userMsgOverhead)
	}
	return nil
}

// liveNode is the memberlist node of the live member `to` (not this node),
// for SendBestEffort.
func (m *Membership) liveNode(to string) (memberlist.Node, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if actors.NodeName(to) == m.self.Name {
		return memberlist.Node{}, fmt.Errorf("membership: datagram to %s: %w: it is this node; a datagram goes to another live member", to, transport.ErrUnknownNode)
	}
	mem, ok := m.view[actors.NodeName(to)]
	n, known := m.nodes[actors.NodeName(to)]
	if !ok || !known || (mem.State != Alive && mem.State != Suspect) {
		state := "not a member"
		if ok {
			state = "a member in state " + mem.State.String()
		}
		return memberlist.Node{}, fmt.Errorf("membership: datagram to %s: %w: %s; a datagram goes to a live (alive or suspect) member", to, transport.ErrUnknownNode, state)
	}
	return n, nil
}

// Broadcast queues b for epidemic broadcast in a frame carrying this node's
// name, boot nonce and next sequence number.
func (p *packets) Broadcast(protocol string, b []byte) error {
	if p.closed() {
		return fmt.Errorf("membership: node %s: broadcast: %w", p.m.cfg.Name, transport.ErrClosed)
	}
	if err := transport.ValidateName("protocol", protocol); err != nil {
		return fmt.Errorf("membership: broadcast: %w", err)
	}
	if len(b) > BroadcastLimit {
		return fmt.Errorf("%w: broadcast of protocol %s is %d bytes; the limit is %d (room for SWIM's own gossip in each packet)",
			transport.ErrTooLarge, protocol, len(b), BroadcastLimit)
	}
	origin := string(p.m.cfg.Name)
	frame := make([]byte, 0, 2+len(origin)+16+1+len(protocol)+len(b))
	frame = append(frame, kindGossip, byte(len(origin)))
	frame = append(frame, origin...)
	frame = binary.BigEndian.AppendUint64(frame, p.nonce)
	frame = binary.BigEndian.AppendUint64(frame, p.seq.Add(1))
	frame = append(frame, byte(len(protocol)))
	frame = append(frame, protocol...)
	frame = append(frame, b...)
	p.broadcasts.Add(1)
	p.enqueue(&gossipFrame{p: p, msg: frame, protocol: protocol})
	return nil
}

// enqueue queues a frame (own or relayed) and prunes the queue to its
// limit, telling Dropped of each frame pruned.
func (p *packets) enqueue(f *gossipFrame) {
	p.qmu.Lock()
	p.queue.QueueBroadcast(f)
	var pruned []string
	if p.queue.NumQueued() > p.queueLimit {
		p.pruning = true
		p.queue.Prune(p.queueLimit)
		p.pruning = false
		pruned, p.pruned = p.pruned, nil
	}
	p.qmu.Unlock()
	if len(pruned) == 0 {
		return
	}
	p.dropped.Add(int64(len(pruned)))
	if h := p.handler.Load(); h != nil && h.Dropped != nil {
		for _, proto := range pruned {
			h.Dropped(transport.Gossip, proto)
		}
	}
}

// getBroadcasts hands memberlist the frames that fit in limit bytes (with
// overhead per frame) and tells Transmitted of each.
func (p *packets) getBroadcasts(overhead, limit int) [][]byte {
	p.qmu.Lock()
	msgs := p.queue.GetBroadcasts(overhead, limit)
	p.qmu.Unlock()
	if len(msgs) == 0 {
		return nil
	}
	h := p.handler.Load()
	for _, msg := range msgs {
		n := len(msg) + userMsgOverhead
		p.transmissions.Add(1)
		p.transmittedBytes.Add(int64(n))
		if h != nil && h.Transmitted != nil {
			if g, err := parseGossip(msg); err == nil {
				h.Transmitted(transport.Gossip, g.protocol, n)
			}
		}
	}
	return msgs
}

// gossipFrame is a broadcast frame in the queue: memberlist's Broadcast.
type gossipFrame struct {
	p        *packets
	msg      []byte
	protocol string
}

var _ memberlist.UniqueBroadcast = (*gossipFrame)(nil)

func (f *gossipFrame) Invalidates(memberlist.Broadcast) bool { return false }
func (f *gossipFrame) Message() []byte                       { return f.msg }
func (f *gossipFrame) UniqueBroadcast()                      {}

// Finished: the queue is done with the frame, after its last transmission
// or (with pruning set) pruned. Called with qmu held.
func (f *gossipFrame) Finished() {
	if f.p.pruning {
		f.p.pruned = append(f.p.pruned, f.protocol)
	}
}

// gossipHeaderOf is a parsed broadcast frame.
type parsedGossip struct {
	origin     string
	nonce, seq uint64
	protocol   string
	body       []byte
}

// frameError is why a frame was refused: a refusal reason.
type frameError int

func (e frameError) Error() string { return refusalNames[e] }

// parseName reads a length-prefixed name at b[0:].
func parseName(b []byte) (string, []byte, error) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, frameError(refusedTruncated)
	}
	name := string(b[1 : 1+int(b[0])])
	if transport.ValidateName("name", name) != nil {
		return "", nil, frameError(refusedName)
	}
	return name, b[1+int(b[0]):], nil
}

// parseGossip parses a broadcast frame (kind byte included).
func parseGossip(b []byte) (parsedGossip, error) {
	var g parsedGossip
	if len(b) < 1 || b[0] != kindGossip {
		return g, frameError(refusedKind)
	}
	var err error
	if g.origin, b, err = parseName(b[1:]); err != nil {
		return g, err
	}
	if len(b) < 16 {
		return g, frameError(refusedTruncated)
	}
	g.nonce, g.seq = binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
	if g.protocol, b, err = parseName(b[16:]); err != nil {
		return g, err
	}
	if len(b) > BroadcastLimit {
		return g, frameError(refusedOversized)
	}
	g.body = b
	return g, nil
}

// notifyMsg handles a user message memberlist received: a datagram or a
// broadcast frame of this package, or garbage (refused and counted).
// memberlist reuses buf: what is kept is copied.
func (p *packets) notifyMsg(buf []byte) {
	if len(buf) == 0 {
		p.refuse(refusedTruncated)
		return
	}
	switch buf[0] {
	case kindDatagram:
		body := buf[datagramHeader:]
		if len(body) == 0 {
			p.refuse(refusedTruncated) // no envelope is empty
			return
		}
		if len(body) > p.datagramLimit {
			p.refuse(refusedOversized)
			return
		}
		h := p.handler.Load()
		if h == nil || h.Receive == nil {
			p.refuse(refusedNoHandler)
			return
		}
		p.datagramsReceived.Add(1)
		h.Receive(transport.Datagram, clone(body))
	case kindGossip:
		if len(buf) > gossipHeader+BroadcastLimit {
			p.refuse(refusedOversized)
			return
		}
		g, err := parseGossip(buf)
		if err != nil {
			p.refuse(int(err.(frameError)))
			return
		}
		if actors.NodeName(g.origin) == p.m.cfg.Name {
			// This node's own broadcast coming back (or one of an
			// earlier run of it): never delivered to itself.
			p.duplicates.Add(1)
			return
		}
		if !p.dedupe.first(g.origin, g.nonce, g.seq) {
			p.duplicates.Add(1)
			return
		}
		if p.ml.Load() != nil && !p.closed() {
			p.relays.Add(1)
			frame := clone(buf)
			p.enqueue(&gossipFrame{p: p, msg: frame, protocol: g.protocol})
		}
		h := p.handler.Load()
		if h == nil || h.Receive == nil {
			p.refuse(refusedNoHandler)
			return
		}
		p.delivered.Add(1)
		h.Receive(transport.Gossip, clone(g.body))
	default:
		p.refuse(refusedKind)
	}
}

func (p *packets) refuse(reason int) { p.refused[reason].Add(1) }

func clone(b []byte) []byte { return append(make([]byte, 0, len(b)), b...) }

// PacketStats are the counters of a node's datagrams and gossip.
type PacketStats struct {
	DatagramsSent, DatagramsReceived int64
	// Broadcasts counts this node's own broadcasts; Delivered the
	// broadcasts of others handed to the handler (each once).
	Broadcasts, Delivered int64
	// Queued is the frames in the gossip queue (own and relayed).
	Queued int
	// Transmissions and TransmittedBytes count each frame handed to
	// memberlist's gossip (own or relayed), with its bytes.
	Transmissions, TransmittedBytes int64
	// Relays counts others' broadcasts queued for relaying.
	Relays int64
	// Duplicates counts broadcast copies not delivered: already seen,
	// older than the de-duplication window, or this node's own.
	Duplicates int64
	// Dropped counts frames pruned from a full queue before their last
	// transmission.
	Dropped int64
	// Refused counts the user packets refused, by reason: unknown_kind,
	// truncated, oversized, bad_name, no_handler.
	Refused map[string]int64
}

func (p *packets) stats() PacketStats {
	s := PacketStats{
		DatagramsSent:     p.datagramsSent.Load(),
		DatagramsReceived: p.datagramsReceived.Load(),
		Broadcasts:        p.broadcasts.Load(),
		Delivered:         p.delivered.Load(),
		Queued:            p.queue.NumQueued(),
		Transmissions:     p.transmissions.Load(),
		TransmittedBytes:  p.transmittedBytes.Load(),
		Relays:            p.relays.Load(),
		Duplicates:        p.duplicates.Load(),
		Dropped:           p.dropped.Load(),
		Refused:           map[string]int64{},
	}
	for i, n := range refusalNames {
		s.Refused[n] = p.refused[i].Load()
	}
	return s
}

// dedupe remembers, per origin, which sequence numbers of its current
// and previous boot nonce were seen, in a sliding window; it keeps at
// most `origins` origins, evicting the least recently heard from. Safe
// for concurrent use.
type dedupe struct {
	window, cap int
	mu          sync.Mutex
	origins     map[string]*list.Element // of *originState
	lru         list.List                // most recent first
}

type originState struct {
	name      string
	cur, prev seqWindow
}

// seqWindow is the sequence numbers of one boot nonce seen: the highest,
// and a bitmap of the window below it.
type seqWindow struct {
	used  bool
	nonce uint64
	top   uint64
	bits  []uint64
}

func newDedupe(window, origins int) *dedupe {
	return &dedupe{window: (window + 63) / 64 * 64, cap: origins, origins: map[string]*list.Element{}}
}

// first reports whether (origin, nonce, seq) is seen for the first time
// (and remembers it). A sequence number below the window is taken as seen.
func (d *dedupe) first(origin string, nonce, seq uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.origins[origin]
	if ok {
		d.lru.MoveToFront(e)
	} else {
		if d.lru.Len() >= d.cap {
			old := d.lru.Back()
			d.lru.Remove(old)
			delete(d.origins, old.Value.(*originState).name)
		}
		e = d.lru.PushFront(&originState{name: origin})
		d.origins[origin] = e
	}
	o := e.Value.(*originState)
	switch {
	case o.cur.used && o.cur.nonce == nonce:
		return o.cur.first(seq, d.window)
	case o.prev.used && o.prev.nonce == nonce:
		return o.prev.first(seq, d.window)
	}
	// A new run of the origin: a fresh window; the previous run's is kept
	// for its broadcasts still in flight.
	bits := o.prev.bits
	o.prev = o.cur
	o.cur = seqWindow{used: true, nonce: nonce, top: seq, bits: bits}
	if o.cur.bits == nil {
		o.cur.bits = make([]uint64, d.window/64)
	}
	clear(o.cur.bits)
	o.cur.set(seq, d.window)
	return true
}

func (w *seqWindow) set(seq uint64, window int) {
	i := seq % uint64(window)
	w.bits[i/64] |= 1 << (i % 64)
}

func (w *seqWindow) has(seq uint64, window int) bool {
	i := seq % uint64(window)
	return w.bits[i/64]&(1<<(i%64)) != 0
}

func (w *seqWindow) first(seq uint64, window int) bool {
	W := uint64(window)
	switch {
	case seq > w.top:
		if seq-w.top >= W {
			clear(w.bits)
		} else {
			// Forget the numbers the window slides over, a word at a
			// time where it can.
			for s := w.top + 1; s < seq; {
				i := s % W
				if i%64 == 0 && seq-s >= 64 {
					w.bits[i/64] = 0
					s += 64
					continue
				}
				w.bits[i/64] &^= 1 << (i % 64)
				s++
			}
		}
		w.top = seq
		w.set(seq, window)
		return true
	case w.top-seq >= W:
		return false // below the window: taken as seen
	case w.has(seq, window):
		return false
	}
	w.set(seq, window)
	return true
}

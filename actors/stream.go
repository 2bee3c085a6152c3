package actors

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"
	"time"

	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// Streams carry a value larger than an envelope (a Raft snapshot, a job's
// input) from a protocol to the same protocol on another node, as chunks
// with flow control and resumption ([Context.SendStream], [OnStream]).
//
// Sender: the value is cut into chunks of StreamConfig.ChunkSize bytes,
// sent as ordinary best-effort envelopes, at most StreamConfig.Window bytes
// beyond the last acknowledged offset (so the protocol's other messages
// interleave). The receiver acknowledges cumulatively, by offset. When
// RTO passes without progress the sender goes back to the last
// acknowledged offset (go-back-N) with one chunk in flight, doubling RTO up
// to MaxRTO, and widens back to Window as acknowledgements come: a connection
// broken mid-stream resumes from where the receiver is, not from zero. A
// receiver that holds nothing of a stream past its start (it restarted, or
// dropped it after IdleTTL) answers Reset and the sender starts over.
//
// Receiver: a chunk is taken only in order; an earlier one is a duplicate
// (acknowledged again), a later one waits for its retransmission. The
// whole value goes to the OnStream handler of the head's type once, and
// the receiver remembers the stream as done for IdleTTL, so a late chunk
// of it is acknowledged as done rather than start it again.
//
// Everything runs on the protocol's actor: one timer per protocol drives
// retransmissions and expiry while any stream is open.

// StreamConfig tunes streams ([Context.SendStream], [OnStream]).
type StreamConfig struct {
	MaxSize   int // largest value a stream carries, sent or received, in bytes
	ChunkSize int // bytes of the value per chunk (one envelope each)
	Window    int // bytes sent beyond the last acknowledged offset, per stream
	// RTO is how long a sender waits for progress before it goes back to
	// the last acknowledged offset; it doubles up to MaxRTO while no
	// progress comes.
	RTO    time.Duration
	MaxRTO time.Duration
	// StallTimeout fails a stream (its done gets ErrStreamStalled) when
	// the receiver acknowledged nothing new for this long.
	StallTimeout time.Duration
	// IdleTTL is how long a receiver keeps a partial stream that receives
	// nothing (and remembers a finished one, for late chunks).
	IdleTTL time.Duration
	// MaxPartialPerPeer is how many partial streams a receiver keeps
	// from one node, per protocol; a stream beyond is refused.
	MaxPartialPerPeer int
	// MaxBuffered is how many bytes of partial streams a receiver keeps
	// per protocol; a chunk beyond waits (unacknowledged) for room.
	MaxBuffered int64
}

// defaultStreamConfig is DefaultConfig's Stream.
func defaultStreamConfig() StreamConfig {
	return StreamConfig{
		MaxSize:           1 << 30,   // 1 GiB
		ChunkSize:         256 << 10, // 256 KiB: a small fraction of an envelope's 4 MiB
		Window:            2 << 20,   // 2 MiB in flight: 8 chunks, with other traffic between
		RTO:               200 * time.Millisecond,
		MaxRTO:            2 * time.Second,
		StallTimeout:      30 * time.Second,
		IdleTTL:           time.Minute,
		MaxPartialPerPeer: 4,
		MaxBuffered:       2 << 30, // two values of MaxSize
	}
}

// withDefaults fills each zero field from d.
func (c StreamConfig) withDefaults(d StreamConfig) StreamConfig {
	fill := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	fillD := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	fill(&c.MaxSize, d.MaxSize)
	fill(&c.ChunkSize, d.ChunkSize)
	fill(&c.Window, d.Window)
	fill(&c.MaxPartialPerPeer, d.MaxPartialPerPeer)
	fillD(&c.RTO, d.RTO)
	fillD(&c.MaxRTO, d.MaxRTO)
	fillD(&c.StallTimeout, d.StallTimeout)
	fillD(&c.IdleTTL, d.IdleTTL)
	if c.MaxBuffered == 0 {
		c.MaxBuffered = max(d.MaxBuffered, 2*int64(c.MaxSize))
	}
	return c
}

// maxStreamChunk bounds ChunkSize and a stream's head: a chunk carries at
// most both, well under transport.MaxEnvelopeSize.
const maxStreamChunk = 1 << 20

func (c StreamConfig) validate() error {
	switch {
	case c.MaxSize < 1:
		return fmt.Errorf("%w: Stream.MaxSize is %d; it must be positive", ErrInvalidConfig, c.MaxSize)
	case c.ChunkSize < 1 || c.ChunkSize > maxStreamChunk:
		return fmt.Errorf("%w: Stream.ChunkSize is %d; valid: 1 to %d bytes", ErrInvalidConfig, c.ChunkSize, maxStreamChunk)
	case c.Window < c.ChunkSize:
		return fmt.Errorf("%w: Stream.Window (%d) is below ChunkSize (%d)", ErrInvalidConfig, c.Window, c.ChunkSize)
	case c.RTO <= 0 || c.MaxRTO < c.RTO:
		return fmt.Errorf("%w: Stream.RTO (%v) must be positive and MaxRTO (%v) at least RTO", ErrInvalidConfig, c.RTO, c.MaxRTO)
	case c.StallTimeout <= 0 || c.IdleTTL <= 0:
		return fmt.Errorf("%w: Stream.StallTimeout (%v) and IdleTTL (%v) must be positive", ErrInvalidConfig, c.StallTimeout, c.IdleTTL)
	case c.MaxPartialPerPeer < 1:
		return fmt.Errorf("%w: Stream.MaxPartialPerPeer is %d; it must be at least 1", ErrInvalidConfig, c.MaxPartialPerPeer)
	case c.MaxBuffered < int64(c.MaxSize):
		return fmt.Errorf("%w: Stream.MaxBuffered (%d) is below MaxSize (%d)", ErrInvalidConfig, c.MaxBuffered, c.MaxSize)
	}
	return nil
}

// Errors a stream's done callback gets (wrapped; test with errors.Is).
var (
	// ErrStreamRefused: the receiver refused the stream: too large, no
	// OnStream handler for its head, too many partial streams, or its
	// handler returned an error or panicked.
	ErrStreamRefused = errors.New("actors: stream refused by the receiver")
	// ErrStreamStalled: the receiver acknowledged nothing new within
	// StreamConfig.StallTimeout.
	ErrStreamStalled = errors.New("actors: stream stalled")
	// ErrStreamAborted: the sending incarnation ended (a restart, a stop)
	// before the receiver had the value.
	ErrStreamAborted = errors.New("actors: stream aborted")
	// ErrStreamTooLarge: a value over StreamConfig.MaxSize, or a head over
	// 1 MiB.
	ErrStreamTooLarge = errors.New("actors: stream value too large")
)

// StreamStats counts a protocol's streams (ProtocolStats.Streams). Data
// bytes are the values' bytes, without envelopes.
type StreamStats struct {
	Sent     int64 // streams the receiver acknowledged whole
	Failed   int64 // streams sent whose done got an error
	Received int64 // values handed to an OnStream handler
	Refused  int64 // streams this node refused (too large, no handler, too many, handler error)
	Expired  int64 // partial streams dropped after IdleTTL without a chunk
	// Restarted counts sent streams started over from offset 0 because
	// the receiver held nothing of them (Reset).
	Restarted int64
	// Bad counts chunks and acks dropped as forged or inconsistent (an
	// offset past the total, a total that changed, zero ids).
	Bad                 int64
	ChunksOut, ChunksIn int64
	BytesOut, BytesIn   int64
	// RetransmittedChunks and RetransmittedBytes count chunks sent again
	// (go-back-N after RTO, or a restart).
	RetransmittedChunks, RetransmittedBytes int64
	Partial                                 int64 // partial received streams held now
	Buffered                                int64 // bytes they hold now
}

type streamMetrics struct {
	sent, failed, received, refused, expired, restarted, bad  atomic.Int64
	chunksOut, chunksIn, bytesOut, bytesIn, reChunks, reBytes atomic.Int64
	partial, buffered                                         atomic.Int64
}

func (m *streamMetrics) snapshot() StreamStats {
	return StreamStats{
		Sent: m.sent.Load(), Failed: m.failed.Load(), Received: m.received.Load(), Refused: m.refused.Load(),
		Expired: m.expired.Load(), Restarted: m.restarted.Load(), Bad: m.bad.Load(),
		ChunksOut: m.chunksOut.Load(), ChunksIn: m.chunksIn.Load(), BytesOut: m.bytesOut.Load(), BytesIn: m.bytesIn.Load(),
		RetransmittedChunks: m.reChunks.Load(), RetransmittedBytes: m.reBytes.Load(),
		Partial: m.partial.Load(), Buffered: m.buffered.Load(),
	}
}

// streamChunk is a piece of a stream's value, at Offset. The first chunk
// (Offset 0) also carries the head.
type streamChunk struct {
	Session uint64 // the sending node's session: names its incarnation
	ID      uint64 // the stream, unique within Session
	Total   uint64 // the value's size in bytes
	Offset  uint64
	Type    string // the head's type, in the chunk at offset 0
	Head    []byte // the head, encoded, in the chunk at offset 0
	Data    []byte
}

// streamAck answers chunks: the receiver holds the value's first Offset
// bytes; or it has the whole value (Done), holds nothing (Reset), or
// refuses the stream (Refused: why).
type streamAck struct {
	Session, ID uint64
	Offset      uint64
	Done, Reset bool
	Refused     string
	// Incarnation is the receiving node's session: an ack of an earlier
	// incarnation of the receiver (one that crashed with part of the
	// stream) never moves the stream past what the current one holds.
	Incarnation uint64
}

// The wire names of the runtime's stream messages.
const (
	StreamChunkType = "troupe.actors.StreamChunk"
	StreamAckType   = "troupe.actors.StreamAck"
)

var (
	_ = messages.Register[streamChunk](StreamChunkType)
	_ = messages.Register[streamAck](StreamAckType)
)

// streams is the stream state of one protocol on one node, on its host:
// it lives in the protocol's actor and needs no lock. Sent streams belong
// to the incarnation that sent them (their done runs on its Context);
// received partial streams survive restarts, handlers do not.
type streams struct {
	nextID   uint64
	out      []*sendingStream // in start order: retransmissions in a fixed order
	in       map[streamKey]*receivingStream
	inOrder  []streamKey // in first-chunk order, for expiry in a fixed order
	handlers map[string]*streamHandler
	buffered int64
	tick     TimerID
}

type streamKey struct {
	from        NodeName
	session, id uint64
}

type sendingStream struct {
	ctx      *Context
	to       NodeName
	session  uint64
	id       uint64
	typ      string
	head     []byte
	data     []byte
	acked    uint64 // the receiver holds data[:acked]
	next     uint64 // next offset to send
	sentHead bool   // the chunk at offset 0 went out in this pass
	highest  uint64 // end of the furthest chunk ever sent: below it is a retransmission
	// cwnd is the bytes allowed beyond acked now: Window, cut to one
	// chunk when RTO passes (a broken link gets one chunk per RTO, not a
	// window), and doubled by each acknowledgement of progress after.
	cwnd     uint64
	peer     uint64 // the receiver's incarnation (its acks' Incarnation), 0 until the first ack
	rto      time.Duration
	due      time.Time // go back to acked then
	progress time.Time // last time acked moved
	done     func(ctx *Context, err error) error
}

type receivingStream struct {
	total    uint64
	typ      string
	head     any
	buf      []byte
	touched  time.Time
	finished bool // handed over (or refused): kept only to answer late chunks
	verdict  string
}

type streamHandler struct {
	fn    func(ctx *Context, from NodeName, head any, data []byte) error
	stats *typeMetrics
}

// SendStream sends the value data, with head describing it, to this
// protocol on node `to` (which may be this node), where the [OnStream]
// handler of head's type gets both once the whole value arrived. head is
// what Send takes (at most 1 MiB encoded); data may be up to
// StreamConfig.MaxSize bytes and must not change until done runs (it is
// read as chunks leave, not copied).
//
// done, when not nil, runs once on this protocol's actor with this
// Context: nil when the receiver has handed the whole value to its
// handler, or an error: ErrStreamRefused (the receiver's reason included),
// ErrStreamStalled (no progress within StreamConfig.StallTimeout) or
// ErrStreamAborted (this incarnation ended first: done then runs during
// the ending, after the protocol's Stop hook, and may still send). An
// error done returns restarts the protocol, as a handler's does.
//
// SendStream fails at once, and done never runs, for an unknown node, a
// value or head too large, or a head Send would refuse.
func (c *Context) SendStream(to NodeName, head any, data []byte, done func(ctx *Context, err error) error) error {
	if c.dead("SendStream") {
		return c.errDead("SendStream")
	}
	h := c.h
	cfg := h.node.cfg.Stream
	if len(data) > cfg.MaxSize {
		return fmt.Errorf("%w: protocol %s streaming %d bytes to %s; StreamConfig.MaxSize is %d", ErrStreamTooLarge, h.name, len(data), to, cfg.MaxSize)
	}
	typ, hb, err := transport.Marshal(head)
	if err != nil {
		return fmt.Errorf("protocol %s streaming to %s: %w", h.name, to, err)
	}
	if len(hb) > maxStreamChunk {
		return fmt.Errorf("%w: protocol %s streaming to %s: a head %s of %d bytes; at most %d", ErrStreamTooLarge, h.name, to, typ, len(hb), maxStreamChunk)
	}
	s := &h.strm
	s.nextID++
	now := h.node.clock.Now()
	os := &sendingStream{ctx: c, to: to, session: h.node.session.Load(), id: s.nextID, typ: typ, head: hb, data: data,
		rto: cfg.RTO, due: now.Add(cfg.RTO), progress: now, done: done, cwnd: uint64(cfg.Window)}
	if err := s.pump(h, os); err != nil {
		return err
	}
	s.out = append(s.out, os)
	h.metrics.typ(typ).msgsOut.Add(1)
	s.arm(h)
	return nil
}

// OnStream registers the handler of streams whose head has type H (a
// protobuf message or a pointer to a registered struct, as [OnMessage]
// takes): it runs once per stream, with the sender's node, the head and
// the whole value, which it may keep. An error it returns, or a panic,
// refuses the value: the sender's done gets ErrStreamRefused with the
// error's text, and this protocol carries on without a restart (the value
// came from another node). Register it in Init.
func OnStream[H any](ctx *Context, h func(ctx *Context, from NodeName, head H, data []byte) error) {
	t := reflect.TypeFor[H]()
	mustConcrete("OnStream", t)
	mustWireType(t)
	name := typeNameOf(t)
	ctx.h.strm.handlers[name] = &streamHandler{
		fn:    func(c *Context, from NodeName, head any, data []byte) error { return h(c, from, head.(H), data) },
		stats: ctx.h.metrics.typ(name),
	}
}

// begin readies the streams for a new incarnation: its handlers start
// empty (Init registers them), and chunks and acks reach the streams
// through the new Context's message table.
func (s *streams) begin(h *protocolHost, ctx *Context) {
	if s.in == nil {
		s.in = map[streamKey]*receivingStream{}
	}
	s.handlers = map[string]*streamHandler{}
	ctx.msgH.set(keyFor[*streamChunk](), ctx.newEntry(reflect.TypeFor[*streamChunk](), func(c *Context, from NodeName, m any) error {
		s.onChunk(h, from, m.(*streamChunk))
		return nil
	}))
	ctx.msgH.set(keyFor[*streamAck](), ctx.newEntry(reflect.TypeFor[*streamAck](), func(c *Context, from NodeName, m any) error {
		return s.onAck(h, from, m.(*streamAck))
	}))
}

// end fails the streams ctx sent with ErrStreamAborted, running their
// done callbacks (a panic in one is logged, not propagated: the
// incarnation is ending already).
func (s *streams) end(h *protocolHost, ctx *Context) {
	for _, os := range slices.Clone(s.out) {
		if os.ctx != ctx {
			continue
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					h.log.Error().Interface("panic", r).Msg("a stream's done callback panicked")
				}
			}()
			if err := s.finish(h, os, fmt.Errorf("%w: protocol %s on node %s restarted or stopped while streaming to %s", ErrStreamAborted, h.name, h.node.name, os.to)); err != nil {
				h.log.Warn().Err(err).Msg("a stream's done callback failed while its incarnation ended")
			}
		}()
	}
	s.handlers = map[string]*streamHandler{}
}

// pump sends os's chunks from next while the window allows.
func (s *streams) pump(h *protocolHost, os *sendingStream) error {
	cfg := h.node.cfg.Stream
	total := uint64(len(os.data))
	for os.next < total || !os.sentHead {
		if os.next-os.acked >= os.cwnd {
			return nil
		}
		n := min(uint64(cfg.ChunkSize), total-os.next)
		ch := &streamChunk{Session: os.session, ID: os.id, Total: total, Offset: os.next, Data: os.data[os.next : os.next+n]}
		if os.next == 0 {
			ch.Type, ch.Head = os.typ, os.head
		}
		size, err := h.outbox.SendMessage(string(os.to), ch)
		if err != nil && os.highest == 0 &&
			(errors.Is(err, transport.ErrUnknownNode) || errors.Is(err, transport.ErrTooLarge) || errors.Is(err, transport.ErrMalformed)) {
			return fmt.Errorf("protocol %s streaming %s to %s: %w", h.name, os.typ, os.to, err)
		}
		// Past the first chunk a failure counts as a loss, which RTO
		// repairs: a node the network forgot for a while (membership
		// thought it failed) gets the stream when it is back, or
		// StallTimeout ends it.
		k := h.metrics.typ(StreamChunkType)
		k.msgsOut.Add(1)
		k.bytesOut.Add(int64(size))
		m := &h.metrics.streams
		m.chunksOut.Add(1)
		m.bytesOut.Add(int64(n))
		if os.next < os.highest || (os.next == 0 && os.highest > 0) {
			m.reChunks.Add(1)
			m.reBytes.Add(int64(n))
		}
		os.sentHead = true
		os.next += n
		os.highest = max(os.highest, os.next)
		if os.highest == 0 {
			os.highest = 1 // an empty value was sent once: a second time is a retransmission
		}
	}
	return nil
}

// arm starts the stream tick while anything is open.
func (s *streams) arm(h *protocolHost) {
	if s.tick != 0 {
		return
	}
	cfg := h.node.cfg.Stream
	period := max(min(cfg.RTO/2, cfg.IdleTTL/4), time.Millisecond)
	s.tick = h.hostTimer(period, period, func() { s.onTick(h) })
}

// onTick goes back to the last acknowledged offset of each stream whose
// RTO passed, fails stalled streams, expires idle received ones, and stops
// when nothing is open.
func (s *streams) onTick(h *protocolHost) {
	cfg := h.node.cfg.Stream
	now := h.node.clock.Now()
	for _, os := range slices.Clone(s.out) {
		switch {
		case now.Sub(os.progress) >= cfg.StallTimeout:
			err := s.finish(h, os, fmt.Errorf("%w: %s to %s: nothing acknowledged past offset %d of %d for %v",
				ErrStreamStalled, os.typ, os.to, os.acked, len(os.data), cfg.StallTimeout))
			if err != nil {
				panic(&HandlerError{Protocol: h.name, Type: "done of a stream of " + os.typ, Err: err})
			}
		case !now.Before(os.due):
			os.next = os.acked
			os.sentHead = os.acked > 0
			os.rto = min(2*os.rto, cfg.MaxRTO)
			os.due = now.Add(os.rto)
			os.cwnd = uint64(cfg.ChunkSize)
			if err := s.pump(h, os); err != nil {
				if ferr := s.finish(h, os, err); ferr != nil {
					panic(&HandlerError{Protocol: h.name, Type: "done of a stream of " + os.typ, Err: ferr})
				}
			}
		}
	}
	keep := s.inOrder[:0]
	for _, k := range s.inOrder {
		is := s.in[k]
		if now.Sub(is.touched) < cfg.IdleTTL {
			keep = append(keep, k)
			continue
		}
		if !is.finished {
			h.metrics.streams.expired.Add(1)
			s.release(h, is)
		}
		delete(s.in, k)
	}
	clear(s.inOrder[len(keep):])
	s.inOrder = keep
	if len(s.out) == 0 && len(s.in) == 0 {
		h.cancelHostTimer(s.tick)
		s.tick = 0
	}
}

// finish closes a sent stream and runs its done.
func (s *streams) finish(h *protocolHost, os *sendingStream, err error) error {
	i := slices.Index(s.out, os)
	if i < 0 {
		return nil
	}
	s.out = slices.Delete(s.out, i, i+1)
	if err == nil {
		h.metrics.streams.sent.Add(1)
	} else {
		h.metrics.streams.failed.Add(1)
		h.log.Debug().Err(err).Str("to", string(os.to)).Msg("stream failed")
	}
	if os.done == nil {
		return nil
	}
	return os.done(os.ctx, err)
}

// onAck moves a sent stream on.
func (s *streams) onAck(h *protocolHost, from NodeName, a *streamAck) error {
	var os *sendingStream
	for _, o := range s.out {
		if o.id == a.ID && o.session == a.Session && o.to == from {
			os = o
			break
		}
	}
	if os == nil {
		return nil // of a finished stream, or of an earlier incarnation of this node
	}
	total := uint64(len(os.data))
	now := h.node.clock.Now()
	cfg := h.node.cfg.Stream
	switch {
	case a.Incarnation < os.peer:
		return nil // from an earlier incarnation of the receiver
	case a.Incarnation > os.peer && os.peer != 0:
		// The receiver restarted: it holds what this ack says, and
		// nothing its earlier incarnation acknowledged.
		h.metrics.streams.restarted.Add(1)
		os.acked, os.next, os.sentHead = 0, 0, false
		os.progress, os.rto, os.due = now, cfg.RTO, now.Add(cfg.RTO)
		os.peer = a.Incarnation
		if a.Reset {
			a.Reset = false // handled
		}
	default:
		os.peer = a.Incarnation
	}
	switch {
	case a.Refused != "":
		return s.finish(h, os, fmt.Errorf("%w: %s to %s: %.200s", ErrStreamRefused, os.typ, os.to, a.Refused))
	case a.Offset > total:
		h.metrics.streams.bad.Add(1)
		return nil
	case a.Done:
		if a.Offset != total {
			h.metrics.streams.bad.Add(1)
			return nil
		}
		return s.finish(h, os, nil)
	case a.Reset:
		if os.acked == 0 && os.next > 0 && os.sentHead {
			// Nothing acknowledged yet: the first chunk is in flight, or
			// was lost; RTO takes care of it without a second pass now.
			return nil
		}
		h.metrics.streams.restarted.Add(1)
		os.acked, os.next, os.sentHead = 0, 0, false
		os.progress, os.rto, os.due = now, cfg.RTO, now.Add(cfg.RTO)
	case a.Offset > os.acked:
		os.cwnd = min(uint64(cfg.Window), os.cwnd+(a.Offset-os.acked))
		os.acked = a.Offset
		os.next = max(os.next, os.acked)
		os.progress, os.rto, os.due = now, cfg.RTO, now.Add(cfg.RTO)
	}
	if err := s.pump(h, os); err != nil {
		return s.finish(h, os, err)
	}
	return nil
}

// ack answers a chunk.
func (s *streams) ack(h *protocolHost, to NodeName, a *streamAck) {
	a.Incarnation = h.node.session.Load()
	size, err := h.outbox.SendMessage(string(to), a)
	if err != nil {
		return
	}
	k := h.metrics.typ(StreamAckType)
	k.msgsOut.Add(1)
	k.bytesOut.Add(int64(size))
}

func (s *streams) refuse(h *protocolHost, from NodeName, ch *streamChunk, why string) {
	h.metrics.streams.refused.Add(1)
	h.node.badInput.Warn(kindStreamRefused).Str("from", string(from)).Str("protocol", string(h.name)).Str("why", why).Msg(kindStreamRefused)
	s.ack(h, from, &streamAck{Session: ch.Session, ID: ch.ID, Refused: why})
}

const kindStreamRefused = "refusing a stream"

// release forgets a partial stream's buffer.
func (s *streams) release(h *protocolHost, is *receivingStream) {
	s.buffered -= int64(len(is.buf))
	h.metrics.streams.buffered.Store(s.buffered)
	h.metrics.streams.partial.Add(-1)
	is.buf = nil
}

// onChunk takes a chunk from another node.
func (s *streams) onChunk(h *protocolHost, from NodeName, ch *streamChunk) {
	cfg := h.node.cfg.Stream
	m := &h.metrics.streams
	m.chunksIn.Add(1)
	switch {
	case ch.Session == 0 || ch.ID == 0 || ch.Offset > ch.Total || uint64(len(ch.Data)) > ch.Total-ch.Offset:
		m.bad.Add(1)
		return
	case ch.Total > uint64(cfg.MaxSize):
		s.refuse(h, from, ch, fmt.Sprintf("a value of %d bytes; node %s takes at most %d (StreamConfig.MaxSize)", ch.Total, h.node.name, cfg.MaxSize))
		return
	}
	now := h.node.clock.Now()
	k := streamKey{from, ch.Session, ch.ID}
	is := s.in[k]
	if is == nil {
		if is = s.open(h, from, k, ch); is == nil {
			return
		}
	}
	switch {
	case is.finished:
		if is.verdict != "" {
			s.ack(h, from, &streamAck{Session: ch.Session, ID: ch.ID, Refused: is.verdict})
		} else {
			s.ack(h, from, &streamAck{Session: ch.Session, ID: ch.ID, Offset: is.total, Done: true})
		}
		return
	case ch.Total != is.total:
		m.bad.Add(1)
		return
	}
	is.touched = now
	got := uint64(len(is.buf))
	end := ch.Offset + uint64(len(ch.Data))
	if ch.Offset > got || (end <= got && got < is.total) {
		// Early (its predecessors were lost), or a duplicate: say where
		// the stream is.
		s.ack(h, from, &streamAck{Session: ch.Session, ID: ch.ID, Offset: got})
		return
	}
	fresh := ch.Data[got-ch.Offset:]
	if s.buffered+int64(len(fresh)) > cfg.MaxBuffered {
		return // no room now: unacknowledged, the sender retries after RTO
	}
	if need := got + uint64(len(fresh)); uint64(cap(is.buf)) < need {
		nb := make([]byte, len(is.buf), min(is.total, max(2*uint64(cap(is.buf)), need)))
		copy(nb, is.buf)
		is.buf = nb
	}
	is.buf = append(is.buf, fresh...)
	s.buffered += int64(len(fresh))
	m.buffered.Store(s.buffered)
	m.bytesIn.Add(int64(len(fresh)))
	got = uint64(len(is.buf))
	if got < is.total {
		s.ack(h, from, &streamAck{Session: ch.Session, ID: ch.ID, Offset: got})
		return
	}
	s.deliver(h, from, k, is)
}

// open starts receiving a stream at its first chunk, or refuses it; nil
// when there is nothing to keep.
func (s *streams) open(h *protocolHost, from NodeName, k streamKey, ch *streamChunk) *receivingStream {
	cfg := h.node.cfg.Stream
	if ch.Offset != 0 {
		// Nothing of this stream here (this node restarted, or dropped it
		// idle): the sender starts over.
		s.ack(h, from, &streamAck{Session: ch.Session, ID: ch.ID, Reset: true})
		return nil
	}
	partial := 0
	for _, o := range s.inOrder {
		if o.from != from {
			continue
		}
		if o.session < ch.Session && !s.in[o].finished {
			// A later incarnation of the sender started a stream: its
			// earlier incarnation's partial streams will not finish.
			s.release(h, s.in[o])
			s.in[o].finished, s.in[o].verdict = true, "the sender restarted"
			continue
		}
		if !s.in[o].finished {
			partial++
		}
	}
	if partial >= cfg.MaxPartialPerPeer {
		s.refuse(h, from, ch, fmt.Sprintf("%d partial streams from %s already; node %s keeps at most %d (StreamConfig.MaxPartialPerPeer)", partial, from, h.node.name, cfg.MaxPartialPerPeer))
		return nil
	}
	hd, ok := s.handlers[ch.Type]
	if !ok {
		s.refuse(h, from, ch, fmt.Sprintf("protocol %s on node %s has no OnStream handler for %q", h.name, h.node.name, ch.Type))
		return nil
	}
	t, err := transport.FindType(ch.Type)
	var head any
	if err == nil {
		head, err = t.Decode(ch.Head)
	}
	if err != nil {
		s.refuse(h, from, ch, fmt.Sprintf("a head that does not decode: %v", err))
		return nil
	}
	hd.stats.msgsIn.Add(1)
	is := &receivingStream{total: ch.Total, typ: ch.Type, head: head, touched: h.node.clock.Now(),
		buf: make([]byte, 0, min(ch.Total, uint64(cfg.ChunkSize)))}
	s.in[k] = is
	s.inOrder = append(s.inOrder, k)
	h.metrics.streams.partial.Add(1)
	s.arm(h)
	return is
}

// deliver hands a whole value to its handler and answers the sender.
func (s *streams) deliver(h *protocolHost, from NodeName, k streamKey, is *receivingStream) {
	data := is.buf
	s.release(h, is)
	is.finished = true
	a := &streamAck{Session: k.session, ID: k.id, Offset: is.total, Done: true}
	hd, ok := s.handlers[is.typ]
	var err error
	if !ok {
		err = fmt.Errorf("protocol %s on node %s has no OnStream handler for %q", h.name, h.node.name, is.typ)
	} else {
		err = s.call(h, hd, from, is.head, data)
	}
	if err != nil {
		h.metrics.streams.refused.Add(1)
		is.verdict = err.Error()
		if is.verdict == "" {
			is.verdict = "refused"
		}
		a = &streamAck{Session: k.session, ID: k.id, Refused: is.verdict}
		h.node.badInput.Warn(kindStreamRefused).Str("from", string(from)).Str("protocol", string(h.name)).Err(err).Msg(kindStreamRefused)
	} else {
		h.metrics.streams.received.Add(1)
	}
	is.head = nil
	s.ack(h, from, a)
}

// call runs an OnStream handler; a panic becomes its error.
func (s *streams) call(h *protocolHost, hd *streamHandler, from NodeName, head any, data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			h.metrics.refused.Add(1) // as a message whose handler panicked (runRemote)
			h.metrics.unhandled.Add(1)
			err = fmt.Errorf("the OnStream handler panicked: %v", r)
		}
	}()
	start := h.node.monotonic()
	err = hd.fn(h.ctx, from, head, data)
	hd.stats.latency.observe(h.node.monotonic() - start)
	return err
}

package actors

import (
	"errors"
	"fmt"
	"time"

	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// reliable is the reliable-delivery state of one protocol on one node: a
// send stream to each peer and a receive stream from each. It lives in the
// protocol's actor, so it needs no lock, and it survives restarts of the
// protocol (a message acknowledged to the sender is never forgotten by a
// restart). Streams are kept in slices in first-use order so that
// retransmissions happen in a fixed order.
//
// Sender: each message gets the next sequence number of its stream and
// stays in the unacked list until a cumulative ack covers it; a periodic
// tick resends what is due, doubling each message's timeout up to MaxRTO.
// Receiver: messages are handed to the protocol in sequence order; early
// ones wait in a bounded buffer, old ones are dropped as duplicates. Acks
// are cumulative and coalesced: one ack per stream per mailbox pass.
// Sessions (the sender node's start time) tell a restarted sender's new
// stream from the old one.
type reliable struct {
	out      map[string]*outStream
	outOrder []*outStream
	in       map[string]*inStream
	inOrder  []*inStream
	tick     TimerID // retransmission tick, 0 when idle
	flushing bool    // an ackFlush is queued
}

type outStream struct {
	peer string
	// session names the stream: this node's start time, raised by one each
	// time the peer turns out to have restarted (restart).
	session uint64
	// peerSession is the receiving node's start time, learnt from its
	// acks (0 until the first).
	peerSession uint64
	next        uint64
	unacked     []*outMsg
}

type outMsg struct {
	seq     uint64
	typ     string
	payload []byte
	due     time.Time
	rto     time.Duration
}

type inStream struct {
	peer    string
	session uint64
	next    uint64 // next sequence number to hand over
	early   map[uint64]*inbound
	ackDue  bool
}

func (r *reliable) init() {
	r.out = map[string]*outStream{}
	r.in = map[string]*inStream{}
}

func (r *reliable) send(h *protocolHost, to string, m any) error {
	cfg := h.node.cfg.Reliable
	st := r.out[to]
	if st == nil {
		st = &outStream{peer: to, next: 1, session: h.node.session.Load()}
	}
	if len(st.unacked) >= cfg.MaxInFlight {
		return fmt.Errorf("%w: %d messages of protocol %s to %s await acknowledgement", ErrWindowFull, len(st.unacked), h.name, to)
	}
	typ, payload, err := transport.Marshal(m)
	if err != nil {
		return fmt.Errorf("protocol %s: %w", h.name, err)
	}
	om := &outMsg{seq: st.next, typ: typ, payload: payload, rto: cfg.RTO}
	om.due = h.node.clock.Now().Add(om.rto)
	err = h.transmit(r.envelope(h, st, om))
	if errors.Is(err, transport.ErrUnknownNode) || errors.Is(err, transport.ErrTooLarge) || errors.Is(err, transport.ErrMalformed) {
		return err // would fail again on every retransmission
	}
	if r.out[to] == nil {
		r.out[to] = st
		r.outOrder = append(r.outOrder, st)
	}
	st.next++
	st.unacked = append(st.unacked, om)
	if r.tick == 0 {
		period := max(cfg.RTO/4, time.Millisecond)
		r.tick = h.hostTimer(period, period, func() { r.retransmit(h) })
	}
	return nil // a transient send error is repaired by retransmission
}

func (r *reliable) envelope(h *protocolHost, st *outStream, om *outMsg) *messages.Envelope {
	return &messages.Envelope{
		From: string(h.node.name), To: st.peer, Protocol: string(h.name),
		Type: om.typ, Payload: om.payload,
		Session: st.session, Seq: om.seq, PeerSession: st.peerSession,
	}
}

// retransmit resends every message whose timeout expired, and stops the
// tick when nothing awaits an ack.
func (r *reliable) retransmit(h *protocolHost) {
	now := h.node.clock.Now()
	maxRTO := h.node.cfg.Reliable.MaxRTO
	waiting := false
	for _, st := range r.outOrder {
		for _, om := range st.unacked {
			waiting = true
			if now.Before(om.due) {
				continue
			}
			om.rto = min(2*om.rto, maxRTO)
			om.due = now.Add(om.rto)
			_ = h.transmit(r.envelope(h, st, om))
		}
	}
	if !waiting {
		h.cancelHostTimer(r.tick)
		r.tick = 0
	}
}

func (r *reliable) onAck(h *protocolHost, m *ackIn) {
	st := r.out[m.from]
	if st == nil || m.session != st.session {
		return // an ack for an earlier stream (or incarnation) of this node
	}
	if m.seenSession >= st.session {
		// The peer saw a later stream from this node than this one: an
		// earlier incarnation's, started when the clock read later than
		// it does now. Continue above it.
		h.log.Warn().Str("peer", st.peer).Uint64("session", st.session).Uint64("seen", m.seenSession).
			Msg("the peer knows a later reliable stream from this node (clock stepped back across a restart?): starting a stream above it")
		st.session = m.seenSession
		r.restart(h, st, st.peerSession)
		return
	}
	switch {
	case m.peerSession < st.peerSession:
		return // from an earlier incarnation of the peer
	case m.peerSession > st.peerSession && st.peerSession != 0:
		r.restart(h, st, m.peerSession)
		return
	}
	st.peerSession = m.peerSession
	n := 0
	for n < len(st.unacked) && st.unacked[n].seq <= m.ack {
		n++
	}
	clear(st.unacked[:n])
	st.unacked = st.unacked[n:]
}

// restart starts a new stream to a peer that restarted: its new
// incarnation knows nothing of the old stream, so the messages it did not
// acknowledge are numbered again from 1 under a new stream session (which
// makes the peer drop anything of the old stream still in flight) and sent
// at once.
func (r *reliable) restart(h *protocolHost, st *outStream, peerSession uint64) {
	st.session++
	st.peerSession = peerSession
	now := h.node.clock.Now()
	for i, om := range st.unacked {
		om.seq = uint64(i + 1)
		om.rto = h.node.cfg.Reliable.RTO
		om.due = now.Add(om.rto)
		_ = h.transmit(r.envelope(h, st, om))
	}
	st.next = uint64(len(st.unacked) + 1)
	h.log.Debug().Str("peer", st.peer).Int("resent", len(st.unacked)).Msg("peer restarted: new reliable stream")
}

// receive runs the receive window for one reliable message.
func (r *reliable) receive(h *protocolHost, m *inbound) {
	env := m.env
	session := h.node.session.Load()
	if env.PeerSession > session {
		// The sender holds a later session for this node than its own:
		// an earlier incarnation started when the clock read later than
		// it does now. Raise it, or the peer would take this node's acks
		// for an older incarnation's and never hear from it.
		h.log.Warn().Str("peer", env.From).Uint64("session", session).Uint64("seen", env.PeerSession).
			Msg("a peer knows a later incarnation of this node (clock stepped back across a restart?): raising the session above it")
		session = h.node.bumpSession(env.PeerSession)
	}
	if env.PeerSession != 0 && env.PeerSession != session {
		// Meant for an earlier incarnation of this node: say who answers
		// now, and the sender starts a new stream.
		_ = h.transmit(&messages.Envelope{
			From: string(h.node.name), To: env.From, Protocol: string(h.name),
			Kind: messages.Envelope_KIND_ACK, Session: env.Session, PeerSession: session,
		})
		return
	}
	st := r.in[env.From]
	if st == nil {
		st = &inStream{peer: env.From, early: map[uint64]*inbound{}}
		r.in[env.From] = st
		r.inOrder = append(r.inOrder, st)
	}
	switch {
	case env.Session < st.session:
		// From an earlier stream of the sender, or from a sender whose
		// clock stepped back: tell it the session seen, so that a live
		// sender continues above it (a late message of a dead stream
		// gets an ack nobody reads).
		_ = h.transmit(&messages.Envelope{
			From: string(h.node.name), To: env.From, Protocol: string(h.name),
			Kind: messages.Envelope_KIND_ACK, Session: env.Session, PeerSession: session,
			SeenSession: st.session,
		})
		return
	case env.Session > st.session: // the sender (re)started: a new stream
		st.session = env.Session
		st.next = 1
		clear(st.early)
	}
	r.requestAck(h, st)
	switch {
	case env.Seq < st.next:
		return // a duplicate; the ack tells the sender again
	case env.Seq > st.next:
		if env.Seq-st.next < uint64(h.node.cfg.Reliable.RecvWindow) {
			st.early[env.Seq] = m
		}
		return
	}
	delete(st.early, env.Seq)
	st.next++
	h.dispatch(m)
	r.drain(h, st)
}

// drain hands over buffered messages that are now in order. If a handler
// fails, the rest stay buffered and drainAll resumes after the restart.
func (r *reliable) drain(h *protocolHost, st *inStream) {
	for {
		m, ok := st.early[st.next]
		if !ok {
			return
		}
		delete(st.early, st.next)
		st.next++
		h.dispatch(m)
	}
}

func (r *reliable) drainAll(h *protocolHost) {
	for _, st := range r.inOrder {
		r.drain(h, st)
	}
}

func (r *reliable) requestAck(h *protocolHost, st *inStream) {
	st.ackDue = true
	if !r.flushing {
		r.flushing = true
		h.post(&ackFlush{})
	}
}

// flushAcks sends one cumulative ack per stream that received something
// since the last flush. It runs after the messages queued before it, so one
// ack covers a whole burst.
func (r *reliable) flushAcks(h *protocolHost) {
	r.flushing = false
	for _, st := range r.inOrder {
		if !st.ackDue {
			continue
		}
		st.ackDue = false
		_ = h.transmit(&messages.Envelope{
			From: string(h.node.name), To: st.peer, Protocol: string(h.name),
			Kind: messages.Envelope_KIND_ACK, Session: st.session, Ack: st.next - 1,
			PeerSession: h.node.session.Load(),
		})
	}
}

package sim

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/troupe-dev/troupe/transport"
)

// Stats rows of memberlist traffic have Protocol MemberlistProtocol and Type
// PacketType or StreamType.
const (
	MemberlistProtocol = "memberlist"
	PacketType         = "packet"
	StreamType         = "stream"
)

// MemberlistPort is the port of every fake memberlist address.
const MemberlistPort = 7946

// packetBuffer is how many delivered packets a transport holds before
// memberlist reads them; more are dropped and counted as Overflow.
const packetBuffer = 1024

var (
	// ErrPartitioned is returned by a dial, or by a read or write on an open
	// stream, when a partition or a one-way block (in either direction) cuts
	// the two nodes apart.
	ErrPartitioned = errors.New("sim: the link is cut by a partition or a block")
	// ErrRefused is returned by a dial to an address whose transport has shut
	// down, and by a read or write on a stream whose peer's transport shut
	// down while it was open.
	ErrRefused = errors.New("sim: connection refused: the memberlist transport at the address has shut down")
)

// MemberlistTransport carries one node's hashicorp/memberlist traffic over a
// [Hub], so that the hub's faults apply to SWIM itself. Set it as
// memberlist.Config.Transport, with Config.Name equal to the node's hub name.
//
// Packets (memberlist's UDP traffic: probes, acks, gossip) go through the
// same fault model as envelopes, keyed by node name: Loss, Duplicate,
// Reorder, Latency and Jitter (hub-wide or per link), partitions and one-way
// blocks. They share each link's order and reordering state with the node's
// envelopes, and the hub's seeded random choices, drawn when a packet is
// written. A packet to a node whose transport has shut down is dropped (Down)
// and a packet that finds the receiver's buffer of 1024 packets full is
// dropped (Overflow), as UDP would. Every delivered copy is a fresh buffer.
// Stats rows: Protocol "memberlist", Type "packet".
//
// Streams (memberlist's TCP traffic: join, push-pull, fallback probes) are
// net.Pipe pairs and reliable: Loss, Duplicate, Reorder, Latency and Jitter
// do not apply to them (TCP would hide the first three; adding latency is
// left out for simplicity). Partitions do: a dial fails with
// [ErrPartitioned] if either direction is cut, and a partition or block
// that starts while a stream is open closes it, so that its reads and
// writes fail with ErrPartitioned. A dial fails with
// [transport.ErrUnknownNode] for an address the hub never gave out and with
// [ErrRefused] if the target has shut down; it waits for memberlist to
// accept the stream until its timeout (an error wrapping
// os.ErrDeadlineExceeded). Deadlines work as on net.Pipe. Unlike TCP there
// is no send buffer: a Write returns when the peer has read it, so a slow
// reader makes the writer wait (memberlist puts deadlines on every stream,
// so it times out rather than hangs). Each Write counts
// as one message with its bytes: Protocol "memberlist", Type "stream", on
// the writer → reader link; a dial refused by a partition counts as Blocked,
// one to a shut-down node as Down.
//
// # Concurrency
//
// All methods are safe for concurrent use. The transport starts no
// goroutine: packets are delivered by the hub (from the sender's WriteTo or
// the hub's scheduler) into a buffered channel, and streams are handed over
// by the dialler. Shutdown closes the node's open streams; the hub's Close
// shuts every transport down.
type MemberlistTransport struct {
	hub     *Hub
	name    string
	addr    *net.UDPAddr
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{} // closed by Shutdown
	closed  bool          // guarded by hub.mu
}

var _ memberlist.NodeAwareTransport = (*MemberlistTransport)(nil)

// memberlists is the hub's memberlist state, guarded by Hub.mu.
type memberlists struct {
	addrs      map[string]*net.UDPAddr         // node name → address, allocated on first use, kept for good
	names      map[string]string               // "ip:port" → node name
	transports map[string]*MemberlistTransport // live transports by node name
	streams    map[*stream]struct{}            // open streams
}

func newMemberlists() memberlists {
	return memberlists{
		addrs:      map[string]*net.UDPAddr{},
		names:      map[string]string{},
		transports: map[string]*MemberlistTransport{},
		streams:    map[*stream]struct{}{},
	}
}

// Memberlist returns a memberlist transport for node name on this hub. The
// node gets a fixed fake address, 10.77.x.y:7946, allocated in order of
// first use (the first name gets 10.77.0.1) and kept for the hub's life, so
// a node that shuts its transport down and asks again gets the same
// address. A name may have one live transport at a time; it may also be
// attached with [Hub.Attach], independently.
func (h *Hub) Memberlist(name string) (*MemberlistTransport, error) {
	if err := transport.ValidateName("node", name); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("sim: memberlist transport for %s: %w", name, transport.ErrClosed)
	}
	if _, ok := h.ml.transports[name]; ok {
		return nil, fmt.Errorf("sim: memberlist transport: %w: %s", transport.ErrNameTaken, name)
	}
	addr, ok := h.ml.addrs[name]
	if !ok {
		n := len(h.ml.addrs) + 1
		if n > 0xfffe {
			return nil, fmt.Errorf("sim: memberlist transport for %s: all %d addresses of 10.77.0.0/16 are taken", name, 0xfffe)
		}
		addr = &net.UDPAddr{IP: net.IPv4(10, 77, byte(n>>8), byte(n)).To4(), Port: MemberlistPort}
		h.ml.addrs[name] = addr
		h.ml.names[addr.String()] = name
	}
	t := &MemberlistTransport{
		hub:     h,
		name:    name,
		addr:    addr,
		packets: make(chan *memberlist.Packet, packetBuffer),
		streams: make(chan net.Conn),
		done:    make(chan struct{}),
	}
	h.ml.transports[name] = t
	return t, nil
}

// MemberlistAddr is the address ("ip:port") of node name's memberlist
// transport, for seeds. It is false if the name never asked for one.
func (h *Hub) MemberlistAddr(name string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.ml.addrs[name]
	if !ok {
		return "", false
	}
	return a.String(), true
}

// Addr is the transport's address, "ip:port".
func (t *MemberlistTransport) Addr() string { return t.addr.String() }

// FinalAdvertiseAddr returns the transport's fixed address, whatever
// memberlist's configured advertise address and port.
func (t *MemberlistTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.addr.IP, t.addr.Port, nil
}

// WriteTo sends a packet to the transport at addr.
func (t *MemberlistTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a packet to the transport at a.Addr (a.Name is not
// used: the address names the node). It fails after Shutdown and for an
// address the hub never gave out; otherwise the packet meets the link's
// faults and the error is nil, as for UDP.
func (t *MemberlistTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	h := t.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if t.closed {
		return time.Time{}, fmt.Errorf("sim: %s writing a packet to %s: %w", t.name, a.Addr, transport.ErrClosed)
	}
	to, ok := h.ml.names[a.Addr]
	if !ok {
		return time.Time{}, fmt.Errorf("sim: %s writing a packet: %w: no memberlist transport has address %q", t.name, transport.ErrUnknownNode, a.Addr)
	}
	now := time.Now()
	key := Key{From: t.name, To: to, Protocol: MemberlistProtocol, Type: PacketType}
	h.transmit(link{t.name, to}, bytes.Clone(b), key, toMemberlist)
	return now, nil
}

// deliverPacket hands a fresh copy of a packet to l.to's transport without
// blocking. Caller holds mu.
func (h *Hub) deliverPacket(l link, b []byte, c *Counters) {
	t := h.ml.transports[l.to]
	if t == nil {
		c.Down++
		return
	}
	p := &memberlist.Packet{Buf: bytes.Clone(b), From: h.ml.addrs[l.from], Timestamp: time.Now()}
	select {
	case t.packets <- p:
		c.Delivered++
		c.DelivBytes += int64(len(b))
	default:
		c.Overflow++
	}
}

// PacketCh delivers the packets sent to this transport. It is never closed.
func (t *MemberlistTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// StreamCh delivers the streams dialled to this transport. It is never
// closed.
func (t *MemberlistTransport) StreamCh() <-chan net.Conn { return t.streams }

// DialTimeout opens a stream to the transport at addr.
func (t *MemberlistTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream to the transport at a.Addr (a.Name is
// not used) and waits up to timeout (none if 0) for memberlist there to
// accept it.
func (t *MemberlistTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	mine, theirs, target, err := t.hub.openStream(t, a.Addr)
	if err != nil {
		return nil, err
	}
	var expired <-chan time.Time
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case target.streams <- theirs:
		return mine, nil
	case <-target.done:
		err = fmt.Errorf("sim: %s dialling %s (%s): %w", t.name, target.name, a.Addr, ErrRefused)
	case <-t.done:
		err = fmt.Errorf("sim: %s dialling %s: %w", t.name, a.Addr, transport.ErrClosed)
	case <-expired:
		err = fmt.Errorf("sim: %s dialling %s (%s): not accepted within %v: %w", t.name, target.name, a.Addr, timeout, os.ErrDeadlineExceeded)
	}
	t.hub.mu.Lock()
	t.hub.cut(mine.s, err)
	t.hub.mu.Unlock()
	return nil, err
}

// Shutdown stops the transport: writes and dials fail, packets and streams
// to it are dropped or refused, and its open streams are closed. It is
// idempotent; the node may ask the hub for a new transport afterwards.
func (t *MemberlistTransport) Shutdown() error {
	t.hub.mu.Lock()
	t.shutdown()
	t.hub.mu.Unlock()
	return nil
}

// shutdown is Shutdown with hub.mu held.
func (t *MemberlistTransport) shutdown() {
	h := t.hub
	if t.closed {
		return
	}
	t.closed = true
	close(t.done)
	if h.ml.transports[t.name] == t {
		delete(h.ml.transports, t.name)
	}
	for s := range h.ml.streams {
		if s.ends[0].t == t || s.ends[1].t == t {
			h.cut(s, fmt.Errorf("sim: stream %s–%s: %w", s.ends[0].from, s.ends[0].to, ErrRefused))
		}
	}
}

// stream is an open memberlist stream: a net.Pipe between a dialler
// (ends[0]) and a listener (ends[1]).
type stream struct {
	ends [2]*streamConn
	err  error // why the hub cut it; guarded by hub.mu
}

// streamConn is one end of a stream.
type streamConn struct {
	net.Conn                           // the net.Pipe end
	hub           *Hub                 // for the lock and the counters
	s             *stream              // both ends
	t             *MemberlistTransport // the transport at this end
	from, to      string               // this end's node, the peer's
	local, remote net.Addr
	closed        bool // guarded by hub.mu
}

// openStream checks that t may dial addr and makes a registered stream.
func (h *Hub) openStream(t *MemberlistTransport, addr string) (mine, theirs *streamConn, target *MemberlistTransport, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t.closed {
		return nil, nil, nil, fmt.Errorf("sim: %s dialling %s: %w", t.name, addr, transport.ErrClosed)
	}
	to, ok := h.ml.names[addr]
	if !ok {
		return nil, nil, nil, fmt.Errorf("sim: %s dialling: %w: no memberlist transport has address %q", t.name, transport.ErrUnknownNode, addr)
	}
	key := Key{From: t.name, To: to, Protocol: MemberlistProtocol, Type: StreamType}
	target = h.ml.transports[to]
	if target == nil {
		h.counters(key).Down++
		return nil, nil, nil, fmt.Errorf("sim: %s dialling %s (%s): %w", t.name, to, addr, ErrRefused)
	}
	if h.isBlocked(link{t.name, to}) || h.isBlocked(link{to, t.name}) {
		h.counters(key).Blocked++
		return nil, nil, nil, fmt.Errorf("sim: %s dialling %s (%s): %w", t.name, to, addr, ErrPartitioned)
	}
	a, b := net.Pipe()
	s := &stream{}
	tcp := func(u *net.UDPAddr) net.Addr { return &net.TCPAddr{IP: u.IP, Port: u.Port} }
	s.ends[0] = &streamConn{Conn: a, hub: h, s: s, t: t, from: t.name, to: to, local: tcp(t.addr), remote: tcp(target.addr)}
	s.ends[1] = &streamConn{Conn: b, hub: h, s: s, t: target, from: to, to: t.name, local: tcp(target.addr), remote: tcp(t.addr)}
	h.ml.streams[s] = struct{}{}
	return s.ends[0], s.ends[1], target, nil
}

// cutStreams cuts every open stream that a partition or block now
// separates. Caller holds mu.
func (h *Hub) cutStreams() {
	for s := range h.ml.streams {
		a, b := s.ends[0].from, s.ends[0].to
		if h.isBlocked(link{a, b}) || h.isBlocked(link{b, a}) {
			h.cut(s, fmt.Errorf("sim: stream %s–%s: %w", a, b, ErrPartitioned))
		}
	}
}

// cut closes both ends of s, recording why. Caller holds mu.
func (h *Hub) cut(s *stream, why error) {
	if s.err == nil {
		s.err = why
	}
	delete(h.ml.streams, s)
	_ = s.ends[0].Conn.Close()
	_ = s.ends[1].Conn.Close()
}

// Read reads from the stream; after a cut it returns the reason.
func (c *streamConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		err = c.reason(err)
	}
	return n, err
}

// Write writes to the stream and counts the bytes on the from → to link;
// after a cut it returns the reason.
func (c *streamConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	h := c.hub
	h.mu.Lock()
	ctr := h.counters(Key{From: c.from, To: c.to, Protocol: MemberlistProtocol, Type: StreamType})
	ctr.Sent++
	ctr.SentBytes += int64(len(p))
	if n > 0 {
		ctr.Delivered++
		ctr.DelivBytes += int64(n)
	}
	cut := c.s.err
	if err != nil && cut != nil {
		ctr.Blocked++
		err = cut
	}
	h.mu.Unlock()
	return n, err
}

// reason replaces a pipe error by the cut's reason, if the hub cut s.
func (c *streamConn) reason(err error) error {
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	if c.s.err != nil {
		return c.s.err
	}
	return err
}

// Close closes this end; the peer reads io.EOF. The stream is forgotten
// when both ends are closed.
func (c *streamConn) Close() error {
	h := c.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.s.ends[0].closed && c.s.ends[1].closed {
		delete(h.ml.streams, c.s)
	}
	return c.Conn.Close()
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

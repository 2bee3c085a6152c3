package membership

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/security"
	"github.com/troupe-dev/troupe/transport"
)

// delegate receives memberlist's callbacks. memberlist calls the event
// callbacks with its node lock held: they only update the view and queue
// events, never call back into memberlist.
type delegate Membership

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*delegate)(nil)
	_ memberlist.ConflictDelegate = (*delegate)(nil)
	_ memberlist.PingDelegate     = (*delegate)(nil)
	_ memberlist.AliveDelegate    = (*delegate)(nil)
	_ memberlist.MergeDelegate    = (*delegate)(nil)
)

// swimState mirrors memberlist's unexported nodeState (unchanged since
// memberlist's first releases; TestGracefulLeaveIsReportedLeft and
// TestStoppedNodeIsReportedFailed fail if an upgrade changes it):
// memberlist hands the event delegate &nodeState.Node, and the fields after
// it are the only place memberlist keeps a member's SWIM incarnation and
// whether it failed or left. Only Nodes given to NotifyJoin, NotifyLeave
// and NotifyUpdate may be read this way.
type swimState struct {
	memberlist.Node
	Incarnation uint32
	State       memberlist.NodeStateType
	StateChange time.Time
}

func swimOf(n *memberlist.Node) *swimState { return (*swimState)(unsafe.Pointer(n)) }

func (d *delegate) m() *Membership { return (*Membership)(d) }

// NodeMeta is this node's MemberMeta.
func (d *delegate) NodeMeta(int) []byte {
	m := d.m()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.meta
}

// NotifyMsg handles a datagram or broadcast frame (packets.go), from
// memberlist's packet goroutine (or a stream's): it copies what it keeps.
func (d *delegate) NotifyMsg(b []byte) { d.m().pk.notifyMsg(b) }

// GetBroadcasts hands memberlist the queued broadcast frames that fit.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.m().pk.getBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(bool) []byte            { return nil }
func (d *delegate) MergeRemoteState(_ []byte, _ bool) {}

func (d *delegate) NotifyJoin(n *memberlist.Node) { d.observe(n) }

func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.observe(n) }

func (d *delegate) NotifyLeave(n *memberlist.Node) { d.observe(n) }

// observe turns memberlist's view of n into events.
func (d *delegate) observe(n *memberlist.Node) {
	m := d.m()
	s := swimOf(n)
	st := Alive
	switch s.State {
	case memberlist.StateSuspect:
		st = Suspect
	case memberlist.StateDead:
		st = Failed
	case memberlist.StateLeft:
		st = Left
	}
	mem := m.member(n, st)
	mem.Incarnation = s.Incarnation
	m.mu.Lock()
	defer m.mu.Unlock()
	if mem.Name == m.self.Name {
		m.self.Incarnation = s.Incarnation
		if st == Alive {
			m.view[mem.Name] = mem
		}
		return
	}
	m.swim[mem.Name] = s
	node := *n
	node.Meta = nil // memberlist's, and not needed to send
	m.nodes[mem.Name] = node
	prev, known := m.view[mem.Name]
	wasLive := known && (prev.State == Alive || prev.State == Suspect)
	if st != Suspect {
		delete(m.ownSuspect, mem.Name)
	}
	switch {
	case st == Failed:
		m.publishLocked(&MemberFailed{Member: mem})
	case st == Left:
		m.publishLocked(&MemberLeft{Member: mem})
	case !wasLive:
		m.publishLocked(&MemberJoined{Member: mem})
	case prev.Generation != mem.Generation:
		old := prev.clone()
		old.State = Failed
		m.publishLocked(&MemberFailed{Member: old}, &MemberJoined{Member: mem})
	default:
		refuted := prev.State == Suspect && st == Alive && mem.Incarnation > prev.Incarnation
		if refuted {
			m.refutations.Add(1)
		}
		m.publishLocked(&MemberUpdated{Member: mem, Refuted: refuted})
	}
}

// NotifyConflict: a node with our name (or a name we know) claims another
// address. When it is this node's own name, a live member already has it.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	m := d.m()
	err := fmt.Errorf("%w: %q is at %s; this node is at %s (choose another Name, or stop the other node and let it be declared failed)",
		ErrNameTaken, existing.Name, other.Address(), existing.Address())
	if actors.NodeName(existing.Name) != m.self.Name {
		m.log.Error().Str("member", existing.Name).Str("known", existing.Address()).Str("claimed", other.Address()).
			Msg("two nodes claim one name; keeping the one known first")
		return
	}
	m.mu.Lock()
	m.conflict = err
	m.mu.Unlock()
	m.log.Error().Err(err).Msg("name conflict")
}

// AckPayload and NotifyPingComplete count this node's probes answered
// directly. An answer does not clear a suspicion: in SWIM only the
// member's refutation (an alive message with a higher incarnation, which
// memberlist's probe of a suspect member asks for) does (swim.go).
func (d *delegate) AckPayload() []byte { return nil }

func (d *delegate) NotifyPingComplete(*memberlist.Node, time.Duration, []byte) {
	d.m().probes.Add(1)
}

// NotifyAlive refuses a member whose name is not a node name
// (transport.ValidateName), and, on a TLS stream, an alive message for the
// peer's own address under another name than its certificate's
// (identity.go): memberlist then ignores the alive message — the name
// never becomes a member, no event names it, and memberlist logs the
// refusal (rate-limited by logBridge). memberlist calls it with its node
// lock held, from its packet and stream goroutines: it only counts and
// reads the view.
func (d *delegate) NotifyAlive(n *memberlist.Node) error {
	// memberlist is about to apply the alive message: publish what its
	// table holds before (a suspicion learnt by gossip that the message
	// may refute), so that no suspicion goes untold.
	d.m().syncMember(actors.NodeName(n.Name))
	if err := transport.ValidateName("member", n.Name); err != nil {
		d.m().refusedNames.Add(1)
		return fmt.Errorf("refusing the member: %w", err)
	}
	if d.tr.tls != nil {
		return d.m().checkSpeaker(n)
	}
	return nil
}

// logBridge routes memberlist's log lines ("[LEVEL] memberlist: text") to
// zerolog at the matching level, and picks out this node's suspicions and
// failed probes, which memberlist reports nowhere else. Lines are
// rate-limited per kind (logLimiter): garbage packets make memberlist log
// one line each.
type logBridge struct {
	m     *Membership
	limit *logLimiter
}

// maxLogText bounds the text of one memberlist line: the text may quote
// what a packet held.
const maxLogText = 512

func (b *logBridge) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level, text := "INFO", line
	if strings.HasPrefix(line, "[") {
		if i := strings.IndexByte(line, ']'); i > 0 {
			level, text = line[1:i], strings.TrimSpace(line[i+1:])
		}
	}
	text = strings.TrimPrefix(text, "memberlist: ")
	if name, ok := strings.CutPrefix(text, "Suspect "); ok {
		if name, _, ok := strings.Cut(name, " has failed"); ok {
			b.m.ownSuspicion(actors.NodeName(name))
		}
	}
	if strings.HasPrefix(text, "Refuting ") {
		b.m.selfRefutations.Add(1)
	}
	if strings.HasPrefix(text, "Failed UDP ping: ") {
		b.m.probeFails.Add(1)
	}
	show, suppressed := b.limit.allow(level, text, time.Now())
	if !show {
		return len(p), nil
	}
	if len(text) > maxLogText {
		text = text[:maxLogText] + "…"
	}
	log := b.m.log
	ev := log.Debug()
	switch level {
	case "ERR", "ERROR":
		ev = log.Error()
	case "WARN":
		ev = log.Warn()
	case "INFO":
		ev = log.Info()
	}
	ev = ev.Str("source", "memberlist")
	if suppressed > 0 {
		ev = ev.Int64("suppressed", suppressed)
		text += fmt.Sprintf(" (%d similar lines held back since the last one)", suppressed)
	}
	ev.Msg(text)
	return len(p), nil
}

// logLimiter holds back repeated memberlist lines: one line of each kind
// per interval, and at most budget lines of all kinds; it counts the
// others, and the next line of a kind shown says how many of its kind were
// held back. A kind is a line's level and its words, with each word that
// varies from line to line (numbers, addresses, quoted names) taken as
// one, so lines that differ only by those are one kind. Safe for
// concurrent use.
type logLimiter struct {
	interval time.Duration
	budget   int // lines per interval, all kinds together

	mu          sync.Mutex
	kinds       map[string]*logKind
	windowStart time.Time // of the budget's interval
	shown       int       // lines shown in it
	suppressed  atomic.Int64
}

type logKind struct {
	shown time.Time // when a line of the kind was last shown
	held  int64     // lines of the kind held back since
}

// maxLogKinds bounds the kinds tracked; lines of further kinds share one.
const maxLogKinds = 256

func newLogLimiter(interval time.Duration, budget int) *logLimiter {
	return &logLimiter{interval: interval, budget: budget, kinds: map[string]*logKind{}}
}

// allow reports whether to log a line, and how many of its kind were held
// back before it.
func (l *logLimiter) allow(level, text string, now time.Time) (bool, int64) {
	kind := level + " " + kindOf(text)
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.windowStart) >= l.interval {
		l.windowStart, l.shown = now, 0
	}
	k := l.kinds[kind]
	if k == nil {
		if len(l.kinds) >= maxLogKinds {
			kind = level + " (other)"
			k = l.kinds[kind]
		}
		if k == nil {
			k = &logKind{}
			l.kinds[kind] = k
		}
	}
	if (!k.shown.IsZero() && now.Sub(k.shown) < l.interval) || l.shown >= l.budget {
		k.held++
		l.suppressed.Add(1)
		return false, 0
	}
	held := k.held
	k.shown, k.held = now, 0
	l.shown++
	return true, held
}

// kindOf is the fixed part of a memberlist line: its first 16 words, each
// one that holds a digit, a quote or an '=' replaced by '*'.
func kindOf(text string) string {
	words := strings.Fields(text)
	if len(words) > 16 {
		words = words[:16]
	}
	for i, w := range words {
		if strings.ContainsAny(w, "0123456789'\"=") {
			words[i] = "*"
		}
	}
	return strings.Join(words, " ")
}

// countingTransport counts the packets and bytes SWIM sends and receives,
// and runs its streams over mutual TLS when configured.
type countingTransport struct {
	memberlist.NodeAwareTransport
	tls                   *security.MutualTLS
	ids                   identities                           // the peers of open TLS streams
	memberAt              func(string) (actors.NodeName, bool) // the live member at a SWIM address
	refusals              *security.LogLimiter                 // what the TLS checks refuse
	refused               atomic.Int64                         // counted
	packetsIn, packetsOut atomic.Int64
	bytesIn, bytesOut     atomic.Int64

	packets chan *memberlist.Packet
	streams chan net.Conn
	stop    chan struct{}
	wg      sync.WaitGroup
}

// newCountingTransport relays inner's channels through counters. The relay
// goroutines end on Shutdown.
func newCountingTransport(inner memberlist.NodeAwareTransport, m *security.MutualTLS) *countingTransport {
	t := &countingTransport{
		NodeAwareTransport: inner,
		tls:                m,
		packets:            make(chan *memberlist.Packet),
		streams:            make(chan net.Conn),
		stop:               make(chan struct{}),
	}
	innerP, innerS := inner.PacketCh(), inner.StreamCh()
	t.wg.Add(2)
	go func() {
		defer t.wg.Done()
		for {
			select {
			case p, ok := <-innerP:
				if !ok {
					return
				}
				t.packetsIn.Add(1)
				t.bytesIn.Add(int64(len(p.Buf)))
				select {
				case t.packets <- p:
				case <-t.stop:
					return
				}
			case <-t.stop:
				return
			}
		}
	}()
	go func() {
		defer t.wg.Done()
		for {
			select {
			case c, ok := <-innerS:
				if !ok {
					return
				}
				var conn net.Conn = &countedConn{Conn: c, t: t}
				if t.tls != nil {
					// The handshake runs on memberlist's goroutine for
					// the stream, at its first read, under its deadline.
					conn = &identifiedConn{Conn: tls.Server(conn, t.tls.Server()), t: t}
				}
				select {
				case t.streams <- conn:
				case <-t.stop:
					_ = c.Close()
					return
				}
			case <-t.stop:
				return
			}
		}
	}()
	return t
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.countOut(len(b))
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *countingTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	t.countOut(len(b))
	return t.NodeAwareTransport.WriteToAddress(b, addr)
}

func (t *countingTransport) countOut(n int) {
	t.packetsOut.Add(1)
	t.bytesOut.Add(int64(n))
}

func (t *countingTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.dial(addr, timeout, func() (net.Conn, error) { return t.NodeAwareTransport.DialTimeout(addr, timeout) })
	if err != nil {
		return nil, err
	}
	return t.wrap(c, addr), nil
}

func (t *countingTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.dial(addr.Addr, timeout, func() (net.Conn, error) { return t.NodeAwareTransport.DialAddressTimeout(addr, timeout) })
	if err != nil {
		return nil, err
	}
	return t.wrap(c, addr.Addr), nil
}

// dial opens a stream. Over TCP (memberlist's NetTransport, which dials
// exactly so) the dial ends at Shutdown: a join through a remembered
// member whose host is gone without refusing (a blackhole) would otherwise
// hold Shutdown, and the node's stop, for TCPTimeout.
func (t *countingTransport) dial(addr string, timeout time.Duration, inner func() (net.Conn, error)) (net.Conn, error) {
	if _, ok := t.NodeAwareTransport.(*memberlist.NetTransport); !ok {
		return inner()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-t.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return (&net.Dialer{Timeout: timeout}).DialContext(ctx, "tcp", addr)
}

// wrap counts a dialled stream's bytes and, with TLS, makes it the client
// side of a handshake that runs at its first write, under memberlist's
// deadline.
func (t *countingTransport) wrap(c net.Conn, addr string) net.Conn {
	var conn net.Conn = &countedConn{Conn: c, t: t}
	if t.tls != nil {
		conn = &identifiedConn{Conn: tls.Client(conn, t.tls.Client(addr)), t: t, dialled: addr}
	}
	return conn
}

// refuse counts and logs (rate-limited) what a TLS check refused, and
// returns err.
func (t *countingTransport) refuse(kind string, err error, certificate, peer string) error {
	t.refused.Add(1)
	t.refusals.Warn(kind).Str("certificate", certificate).Str("peer", peer).Err(err).Msg(kind)
	return err
}

// Shutdown shuts the inner transport down and stops the relays; it is
// called once, by memberlist's Shutdown.
func (t *countingTransport) Shutdown() error {
	err := t.NodeAwareTransport.Shutdown()
	close(t.stop)
	t.wg.Wait()
	t.refusals.Close()
	return err
}

// countedConn counts a stream's bytes.
type countedConn struct {
	net.Conn
	t *countingTransport
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.t.bytesIn.Add(int64(n))
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.t.bytesOut.Add(int64(n))
	return n, err
}

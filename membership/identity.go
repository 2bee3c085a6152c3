package membership

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync"

	"github.com/hashicorp/memberlist"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/security"
)

// With Config.TLS, a member is who its certificate says (security.NodeName)
// as far as memberlist lets a delegate see:
//
//   - New refuses a certificate that names another node than Config.Name.
//   - A stream this node dials to the address of a live member must be
//     answered by a certificate naming that member (push-pull syncs,
//     rejoins, memberlist's TCP fallback of a probe). At an address no live
//     member holds (a seed before the join), any certificate of the CA.
//   - What arrives on a TLS stream is checked against the stream's
//     certificate: the state a peer sends when it joins (or is joined) must
//     list the node its certificate names, and an alive message for the
//     peer's own address — the address dialled, the address its state
//     gives its certificate's node, or where the view has that node — must
//     carry the certificate's name.
//
// memberlist hands its delegates neither the stream nor its peer. The
// stream's certificate reaches NotifyAlive and NotifyMerge through the
// goroutine: memberlist reads a stream and merges what it read on one
// goroutine (handleConn for a stream accepted, the dialler's for a stream
// dialled), so identifiedConn records the peer of the stream under the
// goroutine that completed its handshake, until the stream is closed (a
// stream dialled: until the goroutine dials again, see identities).
// TestTLSMemberSpeaksOnlyForItsCertificate fails if a memberlist upgrade
// moves the merge to another goroutine.
//
// SWIM's UDP packets carry no certificate: an alive message gossiped over
// UDP is checked only by the gossip key (docs/security.md).

// streamPeer is the other side of a TLS stream.
type streamPeer struct {
	name    string // the node its certificate names
	dialled string // the address dialled; "" for a stream accepted
	own     string // its own SWIM address, once known
}

// identities are the peers of the TLS streams open now, by the goroutine
// that serves each. A stream dialled stays recorded after it is closed:
// memberlist closes it before it merges the state it read. The last
// maxClosedDialled of those are kept (a goroutine's next stream replaces
// its record).
type identities struct {
	mu     sync.Mutex
	peers  map[uint64]*streamPeer
	closed []closedDialled // oldest first
}

type closedDialled struct {
	g uint64
	p *streamPeer
}

const maxClosedDialled = 64

func (ids *identities) add(g uint64, p *streamPeer) {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if ids.peers == nil {
		ids.peers = map[uint64]*streamPeer{}
	}
	ids.peers[g] = p
}

// remove forgets the stream p of goroutine g when it closes; a stream
// dialled is forgotten later.
func (ids *identities) remove(g uint64, p *streamPeer) {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if p.dialled == "" {
		if ids.peers[g] == p {
			delete(ids.peers, g)
		}
		return
	}
	ids.closed = append(ids.closed, closedDialled{g, p})
	if len(ids.closed) > maxClosedDialled {
		old := ids.closed[0]
		ids.closed = ids.closed[1:]
		if ids.peers[old.g] == old.p {
			delete(ids.peers, old.g)
		}
	}
}

// current is the peer of the TLS stream the calling goroutine serves, if
// any.
func (ids *identities) current() (*streamPeer, bool) {
	ids.mu.Lock()
	empty := len(ids.peers) == 0
	ids.mu.Unlock()
	if empty {
		return nil, false
	}
	g := goroutineID()
	ids.mu.Lock()
	defer ids.mu.Unlock()
	p, ok := ids.peers[g]
	return p, ok
}

// goroutineID parses the calling goroutine's id from its stack header
// ("goroutine 42 [running]:"); ids are never reused.
func goroutineID() uint64 {
	var buf [40]byte
	s := buf[:runtime.Stack(buf[:], false)]
	s = bytes.TrimPrefix(s, []byte("goroutine "))
	if i := bytes.IndexByte(s, ' '); i > 0 {
		s = s[:i]
	}
	id, _ := strconv.ParseUint(string(s), 10, 64)
	return id
}

// identifiedConn is a TLS stream whose handshake, at its first read or
// write, also identifies the peer and records it for the goroutine.
type identifiedConn struct {
	*tls.Conn
	t       *countingTransport
	dialled string

	once sync.Once
	err  error
	g    uint64      // the goroutine it is recorded under
	peer *streamPeer // nil: not recorded
}

func (c *identifiedConn) identify() error {
	c.once.Do(func() {
		if c.err = c.Conn.Handshake(); c.err != nil {
			return
		}
		certs := c.ConnectionState().PeerCertificates
		if len(certs) == 0 { // the verification refuses this; be sure
			c.err = fmt.Errorf("%w: the peer presented no certificate", security.ErrPeerRefused)
			return
		}
		name := security.NodeName(certs[0])
		if c.dialled != "" && c.t.memberAt != nil {
			if want, ok := c.t.memberAt(c.dialled); ok && want != actors.NodeName(name) {
				c.err = c.t.refuse("refused a SWIM stream: the certificate names another node than the member dialled",
					fmt.Errorf("%w: dialled member %s at %s, whose certificate names node %q", security.ErrPeerRefused, want, c.dialled, name),
					name, c.dialled)
				return
			}
		}
		c.g, c.peer = goroutineID(), &streamPeer{name: name, dialled: c.dialled, own: c.dialled}
		c.t.ids.add(c.g, c.peer)
	})
	return c.err
}

func (c *identifiedConn) Read(p []byte) (int, error) {
	if err := c.identify(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *identifiedConn) Write(p []byte) (int, error) {
	if err := c.identify(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *identifiedConn) Close() error {
	if c.peer != nil {
		c.t.ids.remove(c.g, c.peer)
	}
	return c.Conn.Close()
}

// memberAt is the live member (alive or suspect) whose SWIM address is
// addr.
func (m *Membership) memberAt(addr string) (actors.NodeName, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mem := range m.view {
		if mem.Gossip == addr && (mem.State == Alive || mem.State == Suspect) && mem.Name != m.self.Name {
			return mem.Name, true
		}
	}
	return "", false
}

// gossipOf is the SWIM address of a live member.
func (m *Membership) gossipOf(name actors.NodeName) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mem, ok := m.view[name]; ok && (mem.State == Alive || mem.State == Suspect) {
		return mem.Gossip
	}
	return ""
}

func address(n *memberlist.Node) string {
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// NotifyMerge checks the state a peer sends on a TLS stream when one of
// the two joins: it must list the node the peer's certificate names, alive,
// and at the address dialled when this node dialled it. Refusing it drops
// the whole state; the joining side's Join fails.
func (d *delegate) NotifyMerge(peers []*memberlist.Node) error {
	m := d.m()
	p, ok := m.tr.ids.current()
	if !ok {
		return nil
	}
	var self *memberlist.Node
	for _, n := range peers {
		if n.Name == p.name && n.State == memberlist.StateAlive {
			self = n
		}
	}
	if self == nil {
		return m.tr.refuse("refused a SWIM state: it does not list the node its certificate names",
			fmt.Errorf("%w: a peer whose certificate names node %q sent a state that does not list %q alive: it speaks as another node", security.ErrPeerRefused, p.name, p.name),
			p.name, p.dialled)
	}
	if p.own == "" {
		p.own = address(self)
	}
	return nil
}

// checkSpeaker refuses an alive message that arrives on a TLS stream for
// the peer's own address under another name than its certificate's.
func (m *Membership) checkSpeaker(n *memberlist.Node) error {
	p, ok := m.tr.ids.current()
	if !ok {
		return nil
	}
	own := p.own
	if own == "" {
		own = m.gossipOf(actors.NodeName(p.name))
	}
	if own == "" || n.Name == p.name || address(n) != own {
		return nil
	}
	return m.tr.refuse("refused an alive message: the peer speaks for its own address under another name than its certificate's",
		fmt.Errorf("%w: a peer whose certificate names node %q, at %s, says it is node %q", security.ErrPeerRefused, p.name, own, n.Name),
		p.name, own)
}

package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/security"
	"github.com/troupe-dev/troupe/transport"
)

// inboxID is the process id under which every node receives envelopes.
const inboxID = "troupe"

// Config sets up a [Network].
type Config struct {
	// Bind is the host:port each attached node listens on. Port 0 picks a
	// free port per node, so one Network can host several nodes (an
	// in-process cluster on loopback). Empty means "127.0.0.1:0".
	Bind string
	// Advertise is the host:port other nodes dial, when it differs from the
	// bound address (behind NAT or in a container). Only valid with a fixed
	// port in Bind, since it names one node.
	Advertise string
	// Peers maps node names to addresses, for nodes this process does not
	// attach itself. Membership fills the directory at run time instead.
	Peers map[string]string
	// TLS, when set, makes every connection mutual TLS: the gRPC server
	// refuses a client without a certificate of the cluster's CA, and a
	// node refuses a server without one. A peer's batches are accepted
	// only when sent as the node its certificate names
	// (security.NodeName), so the certificate must name the node attached
	// (one node per Network; see NodeTLS for more). Nil: plaintext gRPC,
	// where anyone who reaches the port can send as any node.
	TLS *security.MutualTLS
	// NodeTLS, when set instead of TLS, gives each node attached its own
	// mutual TLS, whose certificate names it: an in-process cluster of
	// several nodes on one Network over mutual TLS.
	NodeTLS func(node string) (*security.MutualTLS, error)
	// Logger receives what the node port refuses (TLS handshakes, gRPC
	// calls, messages), with the peer's address: at most 10 lines of a kind
	// per 10 seconds per node, then a count of those held back
	// (security.LogLimiter).
	Logger zerolog.Logger
}

// Network is protoactor remote (gRPC streams) between named nodes, with a
// directory from node names to addresses. Nodes attached to the same Network
// find each other without configuration.
type Network struct {
	bindHost  string
	bindPort  int
	advertise string
	tls       *security.MutualTLS
	nodeTLS   func(string) (*security.MutualTLS, error)
	log       zerolog.Logger

	mu       sync.RWMutex
	dir      map[string]string    // node name → address
	attached map[string]bool      // names of the nodes attached here (or attaching)
	eps      map[string]*endpoint // the endpoints attached here, by node name
	version  atomic.Uint64        // bumped on every change of dir, to invalidate cached routes

	dialHook atomic.Pointer[func(from, addr string)] // tests: sees every dial
}

var _ transport.Network = (*Network)(nil)

// New checks the configuration and returns a network; nothing listens until
// a node attaches.
func New(cfg Config) (*Network, error) {
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	host, port, err := splitAddress("Bind", cfg.Bind)
	if err != nil {
		return nil, err
	}
	if cfg.TLS != nil && cfg.NodeTLS != nil {
		return nil, errors.New("remote: Config.TLS and Config.NodeTLS are both set; set TLS for one node's certificate, or NodeTLS for one per node")
	}
	if cfg.Advertise != "" {
		if _, _, err := splitAddress("Advertise", cfg.Advertise); err != nil {
			return nil, err
		}
		if port == 0 {
			return nil, fmt.Errorf("remote: Advertise %q needs a fixed port in Bind (got %q)", cfg.Advertise, cfg.Bind)
		}
	}
	n := &Network{bindHost: host, bindPort: port, advertise: cfg.Advertise, tls: cfg.TLS, nodeTLS: cfg.NodeTLS, dir: map[string]string{}, attached: map[string]bool{}, eps: map[string]*endpoint{},
		log: cfg.Logger.With().Str("component", "remote").Logger()}
	for name, addr := range cfg.Peers {
		if err := n.SetPeer(name, addr); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func splitAddress(field, addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("remote: %s %q is not host:port: %v", field, addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("remote: %s %q: port %q must be a number from 0 to 65535", field, addr, p)
	}
	return host, port, nil
}

// SetPeer records (or changes) the address of a node. The nodes attached to
// this Network know their own addresses: SetPeer leaves them alone, so that
// membership news about a name (perhaps about its earlier run) never
// overrides a node that lives here. An address that leaves the directory
// is no longer dialled, and one that comes back after its node was down is
// probed at once (redial.go).
func (n *Network) SetPeer(name, addr string) error {
	if err := transport.ValidateName("peer", name); err != nil {
		return fmt.Errorf("remote: %w", err)
	}
	host, port, err := splitAddress("peer "+name+" address", addr)
	if err != nil {
		return err
	}
	if host == "" || port == 0 {
		return fmt.Errorf("remote: peer %s address %q needs a host and a non-zero port", name, addr)
	}
	n.mu.Lock()
	old, had := n.dir[name]
	if n.attached[name] || (had && old == addr) {
		n.mu.Unlock()
		return nil
	}
	added := !n.hasAddressLocked(addr)
	n.dir[name] = addr
	n.version.Add(1)
	gone := had && !n.hasAddressLocked(old)
	eps := n.endpointsLocked()
	n.mu.Unlock()
	if gone {
		n.changed(old, true, eps)
	}
	if added {
		n.changed(addr, false, eps)
	}
	return nil
}

// RemovePeer forgets a node's address; sends to it fail with ErrUnknownNode,
// and the nodes attached here close their connections to the address and
// stop dialling it (redial.go). Membership calls it when a node failed or
// left. Nodes attached to this Network are left alone (see SetPeer).
func (n *Network) RemovePeer(name string) {
	n.mu.Lock()
	addr, had := n.dir[name]
	if n.attached[name] || !had {
		n.mu.Unlock()
		return
	}
	delete(n.dir, name)
	n.version.Add(1)
	gone := !n.hasAddressLocked(addr)
	eps := n.endpointsLocked()
	n.mu.Unlock()
	if gone {
		n.changed(addr, true, eps)
	}
}

// Resolve returns the address of a node.
func (n *Network) Resolve(name string) (string, bool) {
	n.mu.RLock()
	addr, ok := n.dir[name]
	n.mu.RUnlock()
	return addr, ok
}

// Attach starts protoactor remote on the node's actor system, listening on
// the configured Bind address, and registers the node in the directory.
func (n *Network) Attach(a transport.Attachment) (_ transport.Endpoint, err error) {
	if err := transport.ValidateName("node", a.Node); err != nil {
		return nil, fmt.Errorf("remote: %w", err)
	}
	if a.System == nil || a.DeliverBatch == nil {
		return nil, fmt.Errorf("remote: attaching %s: Attachment.System and Attachment.DeliverBatch are required", a.Node)
	}
	mtls := n.tls
	if n.nodeTLS != nil {
		var err error
		if mtls, err = n.nodeTLS(a.Node); err != nil {
			return nil, fmt.Errorf("remote: node %s's mutual TLS: %w", a.Node, err)
		}
	}
	if mtls != nil && mtls.Subject() != a.Node {
		return nil, fmt.Errorf("remote: node %s cannot use a certificate issued for node %q: with mutual TLS a node's certificate names it in its common name, and peers refuse what it sends as another node (`node certs --nodes %s` issues one)",
			a.Node, mtls.Subject(), a.Node)
	}
	n.mu.Lock()
	if n.attached[a.Node] {
		n.mu.Unlock()
		return nil, fmt.Errorf("remote: %w: %s", transport.ErrNameTaken, a.Node)
	}
	n.attached[a.Node] = true // reserved; a peer entry of that name is replaced below
	n.mu.Unlock()
	defer func() {
		if err != nil {
			n.mu.Lock()
			delete(n.attached, a.Node)
			n.mu.Unlock()
		}
	}()

	var opts []remote.ConfigOption
	if n.advertise != "" {
		opts = append(opts, remote.WithAdvertisedHost(n.advertise))
	}
	limiter := security.NewLogLimiter(n.log.With().Str("node", a.Node).Logger(), 10, 10*time.Second)
	defer func() {
		if err != nil {
			limiter.Close()
		}
	}()
	g := &guard{node: a.Node, sys: a.System, tls: mtls != nil, reject: a.Reject, log: limiter}
	serverOpts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(g.unary),
		grpc.ChainStreamInterceptor(g.stream),
		grpc.MaxRecvMsgSize(maxGRPCMessage),
	}
	if mtls != nil {
		server := loggedCreds{TransportCredentials: credentials.NewTLS(mtls.Server("h2")), log: limiter}
		serverOpts = append(serverOpts, grpc.Creds(server))
	}
	dialOpts := []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return n.dial(ctx, a.Node, addr) }),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: dialTimeout}),
	}
	if mtls != nil {
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(dialCreds{m: mtls, net: n, log: limiter}))
	} else {
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	opts = append(opts, remote.WithServerOptions(serverOpts...), remote.WithDialOptions(dialOpts...))
	// No check of the port before protoactor listens: a listener opened
	// and closed to check it, then opened again, loses the port to any
	// fork in between (the child holds the first socket until it execs:
	// "address already in use" in tests that start node processes while
	// a node starts). start turns protoactor's panic on a busy port into
	// an error instead.
	rcfg := remote.Configure(n.bindHost, n.bindPort, opts...)
	rcfg.MaxRetryCount = maxDialAttempts
	rcfg.EndpointWriterBatchSize = writerBatch
	r := remote.NewRemote(a.System, rcfg)
	ep := &endpoint{net: n, name: a.Node, sys: a.System, remote: r, guard: g, deliverBatch: a.DeliverBatch, reject: a.Reject, log: limiter,
		links: map[string]*link{}}
	ep.ctx, ep.cancel = context.WithCancel(context.Background())
	// Subscribed before protoactor's endpoint manager, so that a peer is
	// down before protoactor forgets its connection: a send in between
	// would have protoactor dial it again.
	ep.sub = a.System.EventStream.Subscribe(ep.onEvent)
	defer func() {
		if err != nil {
			a.System.EventStream.Unsubscribe(ep.sub)
			ep.cancel()
		}
	}()
	if err := start(r); err != nil {
		return nil, fmt.Errorf("remote: node %s cannot listen on %s:%d: %w", a.Node, n.bindHost, n.bindPort, err)
	}
	if _, ok := a.System.ProcessRegistry.Add(&inbox{ep: ep, names: map[string]*names{}}, inboxID); !ok {
		r.Shutdown(false)
		return nil, fmt.Errorf("remote: node %s: its actor system already has a %q process (attached twice?)", a.Node, inboxID)
	}
	ep.addr = a.System.Address()
	n.mu.Lock()
	added := !n.hasAddressLocked(ep.addr)
	n.dir[a.Node] = ep.addr
	n.eps[a.Node] = ep
	n.version.Add(1)
	eps := n.endpointsLocked()
	n.mu.Unlock()
	if added {
		n.changed(ep.addr, false, eps)
	}
	return ep, nil
}

// start runs remote.Start, which panics when it cannot listen.
func start(r *remote.Remote) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	r.Start()
	return nil
}

type endpoint struct {
	net          *Network
	name         string
	addr         string
	sys          *actor.ActorSystem
	remote       *remote.Remote
	guard        *guard
	deliverBatch transport.DeliverBatch
	reject       func(error)
	log          *security.LogLimiter // closed by Close, after the server stopped

	// The peers it sends to, and their probes (redial.go).
	linksMu  sync.Mutex
	links    map[string]*link // by address
	stopping bool             // set by Close: no more probes
	probes   sync.WaitGroup
	ctx      context.Context // cancelled by Close: ends the probes
	cancel   context.CancelFunc
	sub      *eventstream.Subscription // protoactor's endpoint events

	closeOnce sync.Once
	mu        sync.RWMutex // held (read) while handing a batch to protoactor, (write) by Close
	closed    atomic.Bool  // set by Close under mu
}

func (e *endpoint) Address() string { return e.addr }

// Send sends env at once, as a batch of one.
func (e *endpoint) Send(env *messages.Envelope) (int, error) {
	o := e.newOutbox(env.Protocol)
	n, err := o.Send(env)
	o.Flush()
	return n, err
}

func (e *endpoint) Outbox(protocol string) transport.Outbox { return e.newOutbox(protocol) }

func (e *endpoint) newOutbox(protocol string) *outbox {
	return &outbox{ep: e, protocol: protocol, pending: map[string]*pending{}}
}

// maxGRPCMessage is the largest gRPC message a node accepts: gRPC buffers
// a whole message before anyone looks at it, so this is what any peer that
// reaches the node port (before its first batch is checked, even without
// a certificate) can make the node hold per stream. A larger one ends the
// stream with codes.ResourceExhausted, unread.
//
// What Troupe sends must fit: an outbox batch is at most flushAt (64 KiB)
// plus one envelope, an envelope at most transport.MaxEnvelopeSize (4 MiB;
// a raft snapshot travels as one, a raft append carries at most
// consensus.Config.MaxSizePerMsg, 1 MiB), and protoactor's writer puts up
// to writerBatch queued batches in one gRPC message, whatever their size.
// A flood (a handler sending thousands of messages to one node) queues
// full 64 KiB batches: writerBatch of them are 16 MiB, and the rest of the
// bound leaves room for a dozen large envelopes among them. Beyond that
// the stream breaks and protoactor reconnects, losing what was queued
// (reliable sends are sent again; raft sends its messages again).
const maxGRPCMessage = 64 << 20

// writerBatch is how many queued messages (Troupe batches) protoactor's
// endpoint writer puts in one gRPC message (protoactor's default: 1000,
// which a flood of 64 KiB batches turns into a 64 MiB message). 250 keeps
// a flood at 16 MiB and still amortises a gRPC message over hundreds of
// one-message batches.
const writerBatch = 250

// flushAt is the size at which an outbox sends a destination's batch
// without waiting for Flush. A batch is at most flushAt plus one envelope.
const flushAt = 64 << 10

// outbox collects, per destination node, the entries of the next Batch.
type outbox struct {
	ep       *endpoint
	protocol string
	pending  map[string]*pending // by destination; kept between batches
	order    []*pending          // destinations with entries, in order of the first
}

// pending is the next batch to one node.
type pending struct {
	names   []byte     // the batches' names ("from/to/protocol"), shared by all of them
	version uint64     // of the directory the target was resolved in
	target  *actor.PID // the destination's inbox
	local   bool       // the destination is this node
	link    *link      // the destination's address, unless local
	stream  *stream    // to protoactor's writer for the address, unless local
	buf     []byte     // the entries
	last    int        // the previous batch's size, to size the next buffer
	queued  bool       // in the outbox's order
}

func (o *outbox) Send(env *messages.Envelope) (int, error) {
	if env.From != o.ep.name || env.Protocol != o.protocol {
		return 0, fmt.Errorf("%w: node %s's outbox for protocol %s cannot send an envelope from %s/%s", transport.ErrMalformed, o.ep.name, o.protocol, env.From, env.Protocol)
	}
	p, err := o.to(env.To)
	if err != nil {
		return 0, err
	}
	var n int
	if p.buf, n, err = transport.AppendEnvelope(p.buf, env); err != nil {
		return 0, err
	}
	o.added(p)
	return n, nil
}

func (o *outbox) SendMessage(to string, m any) (int, error) {
	p, err := o.to(to)
	if err != nil {
		return 0, err
	}
	var n int
	if p.buf, n, err = transport.AppendMessage(p.buf, m); err != nil {
		return 0, err
	}
	o.added(p)
	return n, nil
}

// to finds the pending batch to a node, resolving the node's address again
// when the directory changed since it last was.
func (o *outbox) to(name string) (*pending, error) {
	if o.ep.closed.Load() {
		return nil, fmt.Errorf("remote: %s sending to %s: %w", o.ep.name, name, transport.ErrClosed)
	}
	p := o.pending[name]
	if v := o.ep.net.version.Load(); p == nil || p.version != v {
		addr, ok := o.ep.net.Resolve(name)
		if !ok || addr == "" {
			if p != nil && !p.queued {
				delete(o.pending, name) // a node that left: forget it
			}
			return nil, fmt.Errorf("remote: %w: %q has no known address", transport.ErrUnknownNode, name)
		}
		if p == nil {
			p = &pending{names: []byte(o.ep.name + "/" + name + "/" + o.protocol)}
			o.pending[name] = p
		}
		p.version, p.local = v, addr == o.ep.addr
		if p.target == nil || p.target.Address != addr {
			p.target = actor.NewPID(addr, inboxID)
			p.link, p.stream = nil, nil
			if !p.local {
				p.link = o.ep.link(addr)
				p.stream = o.ep.stream(p.link, p.names)
			}
		}
	}
	if p.buf == nil {
		p.buf = make([]byte, 0, min(max(2*p.last, 64), flushAt+flushAt/4))
	}
	return p, nil
}

// added notes that p has a new entry, and sends p when it is big enough.
func (o *outbox) added(p *pending) {
	if len(p.buf) >= flushAt {
		o.send(p)
		return
	}
	if !p.queued {
		p.queued = true
		o.order = append(o.order, p)
	}
}

func (o *outbox) Flush() {
	for i, p := range o.order {
		p.queued = false
		o.send(p)
		o.order[i] = nil
	}
	o.order = o.order[:0]
}

// send hands p's entries to the network. To this node itself they go to
// the inbox as one Batch; to another node, to its stream (stream.go),
// which protoactor's writer takes them from as a Batch when it gets to it,
// with what later flushes add meanwhile. A batch for a peer that is down
// is dropped, as protoactor drops what it cannot deliver (redial.go).
func (o *outbox) send(p *pending) {
	if len(p.buf) == 0 {
		return
	}
	o.ep.mu.RLock()
	defer o.ep.mu.RUnlock()
	switch {
	case o.ep.closed.Load(), p.link != nil && p.link.down.Load():
		p.buf = p.buf[:0]
	case p.local:
		// protoactor hands the batch to the local inbox without encoding
		// it; the buffer is the batch's own.
		b := &messages.Batch{Names: p.names, Envelopes: p.buf}
		p.last, p.buf = len(p.buf), nil
		o.ep.sys.Root.Send(p.target, b)
	default:
		token, reuse := p.stream.put(p.buf)
		p.last, p.buf = len(p.buf), reuse
		if token {
			o.ep.remote.SendMessage(p.target, nil, p.stream, nil, -1)
		}
	}
}

// Close removes the node from the directory, then stops its probes, its
// gRPC server and its endpoint writers.
func (e *endpoint) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed.Store(true)
		e.mu.Unlock()
		// First out of the directory, so that the nodes attached here
		// forget the address before its server stops (and no longer dial
		// it); the name stays attached until the end, so that news of it
		// (SetPeer) does not bring the address back meanwhile.
		e.net.mu.Lock()
		gone := false
		if e.net.dir[e.name] == e.addr {
			delete(e.net.dir, e.name)
			e.net.version.Add(1)
			gone = !e.net.hasAddressLocked(e.addr)
		}
		delete(e.net.eps, e.name)
		eps := e.net.endpointsLocked()
		e.net.mu.Unlock()
		if gone {
			e.net.changed(e.addr, true, eps)
		}
		e.linksMu.Lock()
		e.stopping = true
		e.linksMu.Unlock()
		e.cancel()
		e.probes.Wait()
		e.sys.ProcessRegistry.Remove(actor.NewPID(e.addr, inboxID))
		shutdown(e.remote)
		e.sys.EventStream.Unsubscribe(e.sub)
		e.net.mu.Lock()
		delete(e.net.attached, e.name)
		e.net.mu.Unlock()
		e.log.Close()
	})
	return nil
}

// shutdownGrace bounds the graceful part of a shutdown: gRPC's graceful
// stop waits for every inbound stream, and peers keep theirs open until
// they stop themselves.
const shutdownGrace = 500 * time.Millisecond

// shutdown stops a remote: gracefully for up to shutdownGrace, then hard
// (a hard stop also ends gRPC's graceful stop). protoactor's graceful stop
// can also panic ("send on closed channel") when a peer's stream ends at the
// same moment, before it stops the gRPC server; that too ends in a hard
// stop. protoactor may still be stopping its endpoint writers (up to 10s
// when one is retrying a peer that died); shutdown waits for that, so that
// Close returns only when its goroutine has exited.
func shutdown(r *remote.Remote) {
	done := make(chan bool, 1)
	go func() {
		defer func() { done <- recover() == nil }()
		r.Shutdown(true)
	}()
	select {
	case ok := <-done:
		if !ok {
			r.Shutdown(false)
		}
	case <-time.After(shutdownGrace):
		r.Shutdown(false)
		<-done
	}
}

// inbox is the protoactor process that receives a node's batches; the
// remote endpoint reader calls it directly, so a batch reaches the
// protocol's mailbox with no extra hop.
type inbox struct {
	ep    *endpoint
	mu    sync.RWMutex
	names map[string]*names // parsed Batch.names, by their bytes
}

// names are a batch's names, parsed and checked.
type names struct {
	from, protocol string
	err            error
}

// maxNames bounds the inbox's cache of names: a node hears from a few
// nodes and protocols; a peer sending ever new names only empties it.
const maxNames = 4096

func (p *inbox) SendUserMessage(_ *actor.PID, message any) {
	if e, ok := message.(*actor.MessageEnvelope); ok {
		message = e.Message
	}
	switch m := message.(type) {
	case *messages.Batch:
		p.batch(m)
	default:
		p.refuse(fmt.Errorf("%w: node %s received a %T; troupe nodes send troupe.v1.Batch", transport.ErrMalformed, p.ep.name, message))
	}
}

func (p *inbox) batch(b *messages.Batch) {
	nm := p.parse(b.Names)
	if nm.err != nil {
		p.refuse(nm.err)
		return
	}
	if len(b.Envelopes) > 0 {
		p.ep.deliverBatch(nm.from, nm.protocol, b.Envelopes)
	}
}

// parse returns the names of a batch, parsing them the first time.
func (p *inbox) parse(b []byte) *names {
	p.mu.RLock()
	nm := p.names[string(b)]
	p.mu.RUnlock()
	if nm != nil {
		return nm
	}
	nm = p.check(string(b))
	p.mu.Lock()
	if len(p.names) >= maxNames {
		clear(p.names)
	}
	p.names[string(b)] = nm
	p.mu.Unlock()
	return nm
}

func (p *inbox) check(s string) *names {
	from, rest, ok1 := strings.Cut(s, "/")
	to, protocol, ok2 := strings.Cut(rest, "/")
	if !ok1 || !ok2 {
		return &names{err: fmt.Errorf("%w: a batch's names %q are not from/to/protocol", transport.ErrMalformed, s)}
	}
	for _, f := range []struct{ what, name string }{{"sender node", from}, {"receiver node", to}, {"protocol", protocol}} {
		if err := transport.ValidateName(f.what, f.name); err != nil {
			return &names{err: fmt.Errorf("%w: a batch's %v", transport.ErrMalformed, err)}
		}
	}
	if to != p.ep.name {
		return &names{err: fmt.Errorf("%w: a batch for node %q arrived at node %q", transport.ErrUnknownNode, to, p.ep.name)}
	}
	return &names{from: from, protocol: protocol}
}

func (p *inbox) refuse(err error) {
	if p.ep.reject != nil {
		p.ep.reject(err)
	}
}

func (p *inbox) SendSystemMessage(*actor.PID, any) {}

func (p *inbox) Stop(*actor.PID) {}

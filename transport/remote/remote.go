package remote

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

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
	// node refuses a server without one. Nil: plaintext gRPC.
	TLS *security.MutualTLS
	// Logger receives TLS handshake failures (with the peer's address).
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
	log       zerolog.Logger

	mu       sync.RWMutex
	dir      map[string]string // node name → address
	attached map[string]bool   // names of the nodes attached here (or attaching)
	version  atomic.Uint64     // bumped on every change of dir, to invalidate cached routes
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
	if cfg.Advertise != "" {
		if _, _, err := splitAddress("Advertise", cfg.Advertise); err != nil {
			return nil, err
		}
		if port == 0 {
			return nil, fmt.Errorf("remote: Advertise %q needs a fixed port in Bind (got %q)", cfg.Advertise, cfg.Bind)
		}
	}
	n := &Network{bindHost: host, bindPort: port, advertise: cfg.Advertise, tls: cfg.TLS, dir: map[string]string{}, attached: map[string]bool{},
		log: cfg.Logger.Sample(&zerolog.BurstSampler{Burst: 10, Period: 10 * time.Second}).With().Str("component", "remote").Logger()}
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
// overrides a node that lives here.
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
	if !n.attached[name] {
		n.dir[name] = addr
		n.version.Add(1)
	}
	n.mu.Unlock()
	return nil
}

// RemovePeer forgets a node's address; sends to it fail with ErrUnknownNode.
// Nodes attached to this Network are left alone (see SetPeer).
func (n *Network) RemovePeer(name string) {
	n.mu.Lock()
	if !n.attached[name] {
		delete(n.dir, name)
		n.version.Add(1)
	}
	n.mu.Unlock()
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
	if a.System == nil || a.Deliver == nil {
		return nil, fmt.Errorf("remote: attaching %s: Attachment.System and Attachment.Deliver are required", a.Node)
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
	if n.tls != nil {
		server := loggedCreds{TransportCredentials: credentials.NewTLS(n.tls.Server("h2")), log: n.log.With().Str("node", a.Node).Logger()}
		opts = append(opts,
			remote.WithServerOptions(grpc.Creds(server)),
			remote.WithDialOptions(grpc.WithTransportCredentials(dialCreds{n.tls})))
	}
	if n.bindPort != 0 {
		// Check the port before protoactor does: its Start panics on a busy
		// port after rewriting gRPC's global logger.
		l, err := net.Listen("tcp", net.JoinHostPort(n.bindHost, strconv.Itoa(n.bindPort)))
		if err != nil {
			return nil, fmt.Errorf("remote: node %s cannot listen on %s:%d: %w", a.Node, n.bindHost, n.bindPort, err)
		}
		_ = l.Close()
	}
	r := remote.NewRemote(a.System, remote.Configure(n.bindHost, n.bindPort, opts...))
	if err := start(r); err != nil {
		return nil, fmt.Errorf("remote: node %s cannot listen on %s:%d: %w", a.Node, n.bindHost, n.bindPort, err)
	}
	ep := &endpoint{net: n, name: a.Node, sys: a.System, remote: r, deliver: a.Deliver, reject: a.Reject}
	if _, ok := a.System.ProcessRegistry.Add(&inbox{ep: ep}, inboxID); !ok {
		r.Shutdown(false)
		return nil, fmt.Errorf("remote: node %s: its actor system already has a %q process (attached twice?)", a.Node, inboxID)
	}
	ep.addr = a.System.Address()
	n.mu.Lock()
	n.dir[a.Node] = ep.addr
	n.version.Add(1)
	n.mu.Unlock()
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
	net     *Network
	name    string
	addr    string
	sys     *actor.ActorSystem
	remote  *remote.Remote
	deliver transport.Deliver
	reject  func(error)
	routes  sync.Map // routeKey → *route

	closeOnce sync.Once
	mu        sync.RWMutex
	closed    bool
}

func (e *endpoint) Address() string { return e.addr }

// Send resolves env.To and queues env on protoactor's endpoint writer for
// that address. The endpoint owns env from then on.
//
// The names of the envelope (sender, receiver, protocol, payload type) do
// not travel in it: Send moves them into the protoactor sender PID of the
// message (see route), which protoactor sends once per batch, and clears
// them in env. The inbox of the receiving node puts them back.
func (e *endpoint) Send(env *messages.Envelope) (int, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return 0, fmt.Errorf("remote: %s sending to %s: %w", e.name, env.To, transport.ErrClosed)
	}
	n := transport.Size(env)
	if n > transport.MaxEnvelopeSize {
		return 0, fmt.Errorf("%w: envelope of %d bytes for %s/%s; the limit is %d", transport.ErrTooLarge, n, env.To, env.Protocol, transport.MaxEnvelopeSize)
	}
	rt, err := e.route(env)
	if err != nil {
		return 0, err
	}
	if rt.local {
		// To this node itself: protoactor delivers to the local inbox
		// without serialising, so the names stay in the envelope.
		e.sys.Root.Send(rt.target, env)
		return n, nil
	}
	env.From, env.To, env.Protocol, env.Type = "", "", "", ""
	e.remote.SendMessage(rt.target, nil, env, rt.sender, -1)
	return n, nil
}

// route is where the envelopes of one (receiver, protocol, payload type)
// go: the receiver's inbox, and the sender PID that carries the names.
type route struct {
	version uint64     // of the directory it was resolved in
	local   bool       // the receiver is this node
	target  *actor.PID // the receiver's inbox
	sender  *actor.PID // Id: from/to/protocol/type, Address: ours
}

type routeKey struct{ to, protocol, typ string }

// route finds (or makes) the route of env, resolving env.To again when the
// directory changed since the route was made.
func (e *endpoint) route(env *messages.Envelope) (*route, error) {
	key := routeKey{env.To, env.Protocol, env.Type}
	v := e.net.version.Load()
	if r, ok := e.routes.Load(key); ok && r.(*route).version == v {
		return r.(*route), nil
	}
	addr, ok := e.net.Resolve(env.To)
	if !ok || addr == "" {
		return nil, fmt.Errorf("remote: %w: %q has no known address", transport.ErrUnknownNode, env.To)
	}
	r := &route{
		version: v,
		local:   addr == e.addr,
		target:  actor.NewPID(addr, inboxID),
		sender:  actor.NewPID(e.addr, senderID(e.name, env.To, env.Protocol, env.Type)),
	}
	e.routes.Store(key, r)
	return r, nil
}

// Close stops the node's gRPC server and its endpoint writers and removes
// the node from the directory.
func (e *endpoint) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		e.mu.Unlock()
		e.sys.ProcessRegistry.Remove(actor.NewPID(e.addr, inboxID))
		shutdown(e.remote)
		e.net.mu.Lock()
		if e.net.dir[e.name] == e.addr {
			delete(e.net.dir, e.name)
			e.net.version.Add(1)
		}
		delete(e.net.attached, e.name)
		e.net.mu.Unlock()
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

// inbox is the protoactor process that receives a node's envelopes; the
// remote endpoint reader calls it directly, so an envelope reaches the
// protocol's mailbox with no extra hop.
type inbox struct {
	ep   *endpoint
	last atomic.Pointer[names] // the last sender PID seen, parsed
}

// names are the envelope fields a sender PID carries. protoactor hands every
// message of a batch the same *actor.PID for the same sender, so the inbox
// parses and checks a PID once per batch and remembers it by pointer.
type names struct {
	pid                     *actor.PID
	from, to, protocol, typ string
	err                     error
}

// senderID is the Id of the sender PID that carries an envelope's names.
// Node and protocol names cannot contain '/'; a type name is the rest.
func senderID(from, to, protocol, typ string) string {
	return from + "/" + to + "/" + protocol + "/" + typ
}

func parseSenderID(pid *actor.PID) *names {
	nm := &names{pid: pid}
	var ok1, ok2, ok3 bool
	var rest string
	nm.from, rest, ok1 = strings.Cut(pid.Id, "/")
	nm.to, rest, ok2 = strings.Cut(rest, "/")
	nm.protocol, nm.typ, ok3 = strings.Cut(rest, "/")
	if !ok1 || !ok2 || !ok3 {
		nm.err = fmt.Errorf("%w: sender %q is not from/to/protocol/type", transport.ErrMalformed, pid.Id)
	}
	return nm
}

func (p *inbox) SendUserMessage(_ *actor.PID, message any) {
	var sender *actor.PID
	if e, ok := message.(*actor.MessageEnvelope); ok {
		message, sender = e.Message, e.Sender
	}
	env, ok := message.(*messages.Envelope)
	if !ok {
		p.refuse(fmt.Errorf("%w: node %s received a %T, want a troupe.v1.Envelope", transport.ErrMalformed, p.ep.name, message))
		return
	}
	if sender != nil {
		if env.From != "" || env.To != "" || env.Protocol != "" || env.Type != "" {
			p.refuse(fmt.Errorf("%w: envelope with names both in it and in its sender %q", transport.ErrMalformed, sender.Id))
			return
		}
		nm := p.last.Load()
		if nm == nil || nm.pid != sender {
			nm = parseSenderID(sender)
			p.last.Store(nm)
		}
		if nm.err != nil {
			p.refuse(nm.err)
			return
		}
		env.From, env.To, env.Protocol, env.Type = nm.from, nm.to, nm.protocol, nm.typ
	}
	if err := transport.Validate(env); err != nil {
		p.refuse(err)
		return
	}
	if env.To != p.ep.name {
		p.refuse(fmt.Errorf("%w: envelope for node %q arrived at node %q", transport.ErrUnknownNode, env.To, p.ep.name))
		return
	}
	p.ep.deliver(env, transport.Size(env))
}

func (p *inbox) refuse(err error) {
	if p.ep.reject != nil {
		p.ep.reject(err)
	}
}

func (p *inbox) SendSystemMessage(*actor.PID, any) {}

func (p *inbox) Stop(*actor.PID) {}

package remote

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
)

// Dialling peers.
//
// protoactor's endpoint writer dials a peer when the first message for it
// is sent, and when that fails it sleeps 2 s inside its actor, which
// protoactor's shutdown then waits for (remote.Config.MaxRetryCount
// attempts: with protoactor's default of 5 a node that sent to a dead peer
// took 10 s to stop, and left four gRPC connections redialling). So a
// node lets protoactor dial only a peer it has no reason to think dead:
//
//   - protoactor makes one attempt (maxDialAttempts), bounded by
//     dialTimeout: a dial that fails holds the writer (and a Stop) for at
//     most dialTimeout plus protoactor's 2 s;
//   - when a peer's connection breaks or cannot be made
//     (remote.EndpointTerminatedEvent), the peer is down: batches for it
//     are dropped (protoactor dropped them too, while it retried; reliable
//     sends are sent again), and the endpoint probes the address with a
//     plain TCP connect of its own, at once, then after redialMin,
//     doubling up to redialMax. A probe that connects lets protoactor dial on the next
//     send; the backoff starts again only once protoactor has connected
//     (remote.EndpointConnectedEvent);
//   - when the address leaves the directory (membership says the node
//     failed or left: RemovePeer, or it moved: SetPeer), the endpoint
//     closes protoactor's connection to it (an EndpointTerminatedEvent, as
//     protoactor's own cluster does) and stops probing it. An address that
//     comes back is probed at once if it was down;
//   - a probe is cancelled by Close, which waits for it.
const (
	// maxDialAttempts is protoactor's remote.Config.MaxRetryCount: its
	// attempts to connect before it gives a peer up, each followed, if it
	// fails, by a 2 s sleep.
	maxDialAttempts = 1
	// dialTimeout bounds one connection attempt (TCP and the TLS
	// handshake), protoactor's and a probe's; gRPC's own is 20 s.
	dialTimeout = 2 * time.Second
	// redialMin is the wait before the second probe of a peer that is down
	// (the first is at once); each probe that fails doubles it.
	redialMin = 100 * time.Millisecond
	// redialMax caps the wait between probes.
	redialMax = 5 * time.Second
)

// link is what an endpoint knows of one address it sends to.
type link struct {
	down atomic.Bool // batches for it are dropped, and it is probed
	// failures counts the attempts (protoactor's and probes) that failed
	// since protoactor last connected; it sets the wait before the next
	// probe. Guarded by endpoint.linksMu, as is probing.
	failures int
	probing  bool               // a probe goroutine runs for it
	streams  map[string]*stream // the batches sent to it, by names (stream.go)
}

// redialWait is the wait before a probe after failures failed attempts:
// none after the first (a connection that broke while the peer lives, a
// stream ended for an oversized message, costs a TCP connect), then
// redialMin, doubling up to redialMax.
func redialWait(failures int) time.Duration {
	if failures <= 1 {
		return 0
	}
	return min(redialMin<<min(failures-2, 16), redialMax)
}

// dial connects to addr for node from: protoactor's gRPC connections and
// the probes.
func (n *Network) dial(ctx context.Context, from, addr string) (net.Conn, error) {
	if h := n.dialHook.Load(); h != nil {
		(*h)(from, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// hasAddress reports whether some node in the directory has addr.
func (n *Network) hasAddress(addr string) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.hasAddressLocked(addr)
}

func (n *Network) hasAddressLocked(addr string) bool {
	for _, a := range n.dir {
		if a == addr {
			return true
		}
	}
	return false
}

// changed tells the endpoints attached here that addr left the directory
// (gone) or came into it. Called without n.mu held.
func (n *Network) changed(addr string, gone bool, eps []*endpoint) {
	for _, e := range eps {
		if e.addr == addr {
			continue
		}
		if gone {
			e.forget(addr)
		} else {
			e.revive(addr)
		}
	}
}

// endpointsLocked lists the endpoints attached here.
func (n *Network) endpointsLocked() []*endpoint {
	eps := make([]*endpoint, 0, len(n.eps))
	for _, e := range n.eps {
		eps = append(eps, e)
	}
	return eps
}

// link returns the endpoint's state of addr, making it the first time.
func (e *endpoint) link(addr string) *link {
	e.linksMu.Lock()
	defer e.linksMu.Unlock()
	return e.linkLocked(addr)
}

func (e *endpoint) linkLocked(addr string) *link {
	p := e.links[addr]
	if p == nil {
		p = &link{}
		e.links[addr] = p
	}
	return p
}

// onEvent follows protoactor's connections (it runs on the goroutine that
// publishes the event, and must not block).
func (e *endpoint) onEvent(ev any) {
	switch ev := ev.(type) {
	case *actor.DeadLetterEvent:
		if s, ok := ev.Message.(*stream); ok {
			s.take() // protoactor dropped the token: its batch goes too
		}
	case *remote.EndpointTerminatedEvent:
		e.lost(ev.Address)
	case *remote.EndpointConnectedEvent:
		e.linksMu.Lock()
		if p := e.links[ev.Address]; p != nil {
			p.failures = 0
			p.down.Store(false)
		}
		e.linksMu.Unlock()
	}
}

// lost marks addr down, and probes it while it is in the directory.
func (e *endpoint) lost(addr string) {
	if addr == e.addr {
		return
	}
	e.linksMu.Lock()
	defer e.linksMu.Unlock()
	p := e.linkLocked(addr)
	p.down.Store(true)
	for _, s := range p.streams {
		s.reset() // protoactor dropped what its writer held
	}
	p.failures++
	e.probeLocked(addr, p)
}

// probeLocked starts probing addr unless a probe runs, the endpoint is
// closing or the address is not in the directory.
func (e *endpoint) probeLocked(addr string, p *link) {
	if p.probing || e.stopping || !e.net.hasAddress(addr) {
		return
	}
	p.probing = true
	e.probes.Add(1)
	go e.probe(addr, p)
}

// forget closes protoactor's connection to addr, which left the
// directory; sends to it were refused already (ErrUnknownNode).
func (e *endpoint) forget(addr string) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		return
	}
	// protoactor's endpoint manager stops the address's writer and
	// watcher; onEvent marks it down (and does not probe it).
	e.sys.EventStream.Publish(&remote.EndpointTerminatedEvent{Address: addr})
}

// revive probes addr, back in the directory, at once if it was down.
func (e *endpoint) revive(addr string) {
	e.linksMu.Lock()
	defer e.linksMu.Unlock()
	if p := e.links[addr]; p != nil && p.down.Load() {
		p.failures = 0
		e.probeLocked(addr, p)
	}
}

// probe connects to addr, waiting more after each failure, until a connect
// succeeds (the peer is up again), the address leaves the directory, or
// the endpoint closes.
func (e *endpoint) probe(addr string, p *link) {
	defer e.probes.Done()
	stop := func(up bool) {
		e.linksMu.Lock()
		p.probing = false
		if up {
			p.down.Store(false)
		}
		e.linksMu.Unlock()
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		e.linksMu.Lock()
		wait := redialWait(p.failures)
		e.linksMu.Unlock()
		t.Reset(wait)
		select {
		case <-e.ctx.Done():
			stop(false)
			return
		case <-t.C:
		}
		if !p.down.Load() {
			stop(false)
			return
		}
		if !e.net.hasAddress(addr) {
			stop(false) // failed or left: no more dialling
			return
		}
		ctx, cancel := context.WithTimeout(e.ctx, dialTimeout)
		c, err := e.net.dial(ctx, e.name, addr)
		cancel()
		if err == nil {
			_ = c.Close()
			stop(true)
			return
		}
		e.linksMu.Lock()
		p.failures++
		e.linksMu.Unlock()
	}
}

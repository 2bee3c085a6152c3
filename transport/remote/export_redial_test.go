package remote

import "github.com/troupe-dev/troupe/transport"

// SetDialHook has f called at every dial of the network's nodes
// (protoactor's gRPC connections and the probes of peers that are down).
func SetDialHook(n *Network, f func(from, addr string)) { n.dialHook.Store(&f) }

// Kill stops an endpoint's gRPC server at once, as a crash would: its
// connections are reset, with no goodbye. Close still stops the rest.
func Kill(ep transport.Endpoint) { ep.(*endpoint).remote.Shutdown(false) }

// Down reports whether ep holds addr down (batches for it dropped).
func Down(ep transport.Endpoint, addr string) bool {
	e := ep.(*endpoint)
	e.linksMu.Lock()
	defer e.linksMu.Unlock()
	l := e.links[addr]
	return l != nil && l.down.Load()
}

// Probing reports whether ep probes addr.
func Probing(ep transport.Endpoint, addr string) bool {
	e := ep.(*endpoint)
	e.linksMu.Lock()
	defer e.linksMu.Unlock()
	l := e.links[addr]
	return l != nil && l.probing
}

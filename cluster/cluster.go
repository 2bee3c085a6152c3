package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/security"
	"github.com/troupe-dev/troupe/transport"
	"github.com/troupe-dev/troupe/transport/remote"
	"github.com/troupe-dev/troupe/transport/sim"
)

// Option changes how Local builds a cluster.
type Option func(*options)

type options struct {
	members *membership.Config
	remote  bool
	tls     bool
	ca      *security.CA
	sim     sim.Config
	seed    uint64
	logger  zerolog.Logger
	tweak   func(i int, c *actors.Config)
	nameFmt string
}

// Sim runs the cluster on a simulated network (the default) set up by cfg.
func Sim(cfg sim.Config) Option { return func(o *options) { o.remote, o.sim = false, cfg } }

// Remote runs the cluster on protoactor remote over loopback, one port per node.
func Remote() Option { return func(o *options) { o.remote = true } }

// RemoteTLS runs the cluster on protoactor remote over loopback with
// mutual TLS, as a real cluster does: ca issues each node a certificate
// naming it (security.CA.Issue, what `node certs` writes), and each node
// presents its own, on the node port and, with the Membership option, on
// SWIM's streams. A nil ca: the cluster makes a development CA of its own.
func RemoteTLS(ca *security.CA) Option {
	return func(o *options) { o.remote, o.tls, o.ca = true, true, ca }
}

// Seed seeds the nodes (node i gets seed+i) and, unless Sim set one, the hub.
func Seed(seed uint64) Option { return func(o *options) { o.seed = seed } }

// Logger gives every node a logger.
func Logger(l zerolog.Logger) Option { return func(o *options) { o.logger = l } }

// NodeConfig lets the caller change each node's configuration (i from 0).
func NodeConfig(f func(i int, c *actors.Config)) Option { return func(o *options) { o.tweak = f } }

// Names sets the printf format of node names from their number (from 1);
// the default is "node-%d".
func Names(format string) Option { return func(o *options) { o.nameFmt = format } }

// Membership gives every node SWIM membership, set up from cfg (its Name,
// Address, Seeds and Transport are filled in per node, and Colocated, when
// 0, is the cluster's size, as every node shares this process): a
// membership.Membership joined through the first running node and
// attached as the node's "membership" protocol, so protocols receive
// membership events as notifications. On the sim network SWIM runs over
// the hub, so the hub's faults and partitions apply to it; on loopback it
// runs over UDP and TCP on 127.0.0.1 and keeps the remote directory.
func Membership(cfg membership.Config) Option {
	return func(o *options) { o.members = &cfg }
}

// Cluster is N nodes in this process on one network.
type Cluster struct {
	// Hub is the simulated network (nil on remote): faults, partitions, stats.
	Hub *sim.Hub
	// Remote is the loopback network (nil on sim).
	Remote *remote.Network

	o         options
	network   transport.Network
	mu        sync.Mutex
	names     []actors.NodeName
	certs     map[string]*security.MutualTLS   // with RemoteTLS: each node's, issued once
	nodes     map[actors.NodeName]*actors.Node // nil entry: crashed
	members   map[actors.NodeName]*membership.Membership
	factories []actors.Factory
	size      int // the nodes Local started: they share this machine's CPUs
}

// Local starts n nodes named node-1..node-n. Stop stops them.
func Local(n int, opts ...Option) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("cluster: %d nodes; a cluster needs at least 1", n)
	}
	o := options{nameFmt: "node-%d"}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Cluster{o: o, nodes: map[actors.NodeName]*actors.Node{}, members: map[actors.NodeName]*membership.Membership{}, size: n}
	if o.remote {
		cfg := remote.Config{Bind: "127.0.0.1:0", Logger: o.logger}
		if o.tls {
			if c.o.ca == nil {
				ca, err := security.NewCA("Troupe in-process cluster CA", 24*time.Hour)
				if err != nil {
					return nil, fmt.Errorf("cluster: %w", err)
				}
				c.o.ca = ca
			}
			c.certs = map[string]*security.MutualTLS{}
			cfg.NodeTLS = c.nodeTLS
		}
		net, err := remote.New(cfg)
		if err != nil {
			return nil, err
		}
		c.Remote, c.network = net, net
	} else {
		cfg := o.sim
		if cfg.Seed == 0 {
			cfg.Seed = o.seed
		}
		hub, err := sim.New(cfg)
		if err != nil {
			return nil, err
		}
		c.Hub, c.network = hub, hub
	}
	for i := range n {
		name := actors.NodeName(fmt.Sprintf(o.nameFmt, i+1))
		c.names = append(c.names, name)
		if _, err := c.spawn(i, name); err != nil {
			_ = c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// nodeTLS is the mutual TLS of node, issued by the cluster's CA the first
// time the node attaches and kept for its restarts.
func (c *Cluster) nodeTLS(node string) (*security.MutualTLS, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.certs[node]; m != nil {
		return m, nil
	}
	cert, key, err := c.o.ca.Issue(node, nil, 24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	m, err := security.NewMutualTLS(c.o.ca.CertPEM, cert, key, c.o.logger.With().Str("node", node).Logger())
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c.certs[node] = m
	return m, nil
}

func (c *Cluster) spawn(i int, name actors.NodeName) (*actors.Node, error) {
	cfg := actors.DefaultConfig()
	cfg.Name = name
	cfg.Network = c.network
	cfg.Logger = c.o.logger
	if c.o.seed != 0 {
		cfg.Seed = c.o.seed + uint64(i)
	}
	if c.o.tweak != nil {
		c.o.tweak(i, &cfg)
	}
	node, err := actors.NewNode(cfg)
	if err != nil {
		return nil, err
	}
	var m *membership.Membership
	if c.o.members != nil {
		if m, err = c.join(node); err != nil {
			return nil, errors.Join(err, node.Stop())
		}
	}
	c.mu.Lock()
	c.nodes[name] = node
	if m != nil {
		c.members[name] = m
	}
	c.mu.Unlock()
	return node, nil
}

// join starts node's membership, joins it through a running node's and
// attaches it to the node.
func (c *Cluster) join(node *actors.Node) (*membership.Membership, error) {
	cfg := *c.o.members
	cfg.Name = node.Name()
	cfg.Logger = c.o.logger
	cfg.Seeds = nil
	if cfg.Colocated == 0 {
		// Every node runs in this process: the local preset scales with
		// them all, and every node gets the same timings.
		cfg.Colocated = c.size
	}
	if running := c.Members(); len(running) > 0 {
		cfg.Seeds = []string{running[0].GossipAddr()}
	}
	if c.Hub != nil {
		tr, err := c.Hub.Memberlist(string(node.Name()))
		if err != nil {
			return nil, err
		}
		cfg.Transport = tr
	} else {
		cfg.Address = node.Address()
		cfg.Bind = "127.0.0.1:0"
		if c.o.tls {
			m, err := c.nodeTLS(string(node.Name()))
			if err != nil {
				return nil, err
			}
			cfg.TLS = m
		}
	}
	m, err := membership.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := m.Join(context.Background()); err != nil {
		return nil, errors.Join(err, m.Shutdown())
	}
	if _, err := membership.Attach(node, m); err != nil {
		return nil, errors.Join(err, m.Shutdown())
	}
	if c.Remote != nil {
		m.FeedPeers(c.Remote)
	}
	return m, nil
}

// Member returns a running node's membership (nil without the Membership
// option, or if the node is not running).
func (c *Cluster) Member(name actors.NodeName) *membership.Membership {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[name]
}

// Members returns the memberships of the running nodes, in name order.
func (c *Cluster) Members() []*membership.Membership { return inOrder(c, c.members) }

// inOrder lists the non-nil values of byName in node-name order.
func inOrder[T comparable](c *Cluster, byName map[actors.NodeName]T) []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero T
	var out []T
	for _, name := range c.names {
		if v := byName[name]; v != zero {
			out = append(out, v)
		}
	}
	return out
}

// Names lists the node names in order.
func (c *Cluster) Names() []actors.NodeName { return slices.Clone(c.names) }

// Partition splits the simulated network into groups of nodes that cannot
// reach each other, as [sim.Hub.Partition] does with their names (nodes in
// no group form one more). It panics on a cluster on the remote network,
// which has no partitions.
func (c *Cluster) Partition(groups ...[]actors.NodeName) {
	if c.Hub == nil {
		panic("cluster: Partition needs the simulated network (cluster.Sim); this cluster is on the remote one")
	}
	wire := make([][]string, len(groups))
	for i, g := range groups {
		for _, n := range g {
			wire[i] = append(wire[i], string(n))
		}
	}
	c.Hub.Partition(wire...)
}

// Node returns a running node by name (nil if unknown or crashed).
func (c *Cluster) Node(name actors.NodeName) *actors.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[name]
}

// Nodes returns the running nodes in name order.
func (c *Cluster) Nodes() []*actors.Node { return inOrder(c, c.nodes) }

// Start starts a protocol on every running node, and on nodes restarted later.
func (c *Cluster) Start(f actors.Factory) error {
	c.mu.Lock()
	c.factories = append(c.factories, f)
	c.mu.Unlock()
	for _, n := range c.Nodes() {
		if err := n.Start(f); err != nil {
			return err
		}
	}
	return nil
}

// Crash stops a node at once, as a crash would: its protocols and their
// state are gone, messages to it are lost, and with the Membership option
// it leaves no goodbye. It is not kill -9 though: the protocols' Stop
// hooks run (the raft protocol closes its data dir, writing what it still
// held in memory), and on loopback the node leaves the shared directory,
// so that after Restart, on a new port, the others dial it at once.
func (c *Cluster) Crash(name actors.NodeName) error {
	n, m, err := c.take(name)
	if err != nil {
		return err
	}
	if m != nil {
		err = m.Shutdown() // no goodbye: the others detect the failure
	}
	return errors.Join(err, n.Stop())
}

// take removes a running node (and its membership) from the cluster.
func (c *Cluster) take(name actors.NodeName) (*actors.Node, *membership.Membership, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, m := c.nodes[name], c.members[name]
	if n == nil {
		return nil, nil, fmt.Errorf("cluster: no running node %q", name)
	}
	c.nodes[name] = nil
	delete(c.members, name)
	return n, m, nil
}

// Leave stops a node gracefully: with the Membership option it first
// leaves the cluster, so that the others report it left rather than
// failed. Restart brings it back.
func (c *Cluster) Leave(name actors.NodeName) error {
	n, m, err := c.take(name)
	if err != nil {
		return err
	}
	if m != nil {
		err = m.Leave(5 * time.Second)
	}
	return errors.Join(err, n.Stop())
}

// Restart brings a crashed node back under its name, with every protocol
// given to Start, from fresh state.
func (c *Cluster) Restart(name actors.NodeName) (*actors.Node, error) {
	i := slices.Index(c.names, name)
	if i < 0 {
		return nil, fmt.Errorf("cluster: no node %q; nodes are %v", name, c.names)
	}
	if c.Node(name) != nil {
		return nil, fmt.Errorf("cluster: node %q is running; Crash it first", name)
	}
	n, err := c.spawn(i, name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	fs := slices.Clone(c.factories)
	c.mu.Unlock()
	for _, f := range fs {
		if err := n.Start(f); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Stop stops every node and the network; it returns when all their
// goroutines have exited.
func (c *Cluster) Stop() error {
	var errs []error
	for _, m := range c.Members() {
		errs = append(errs, m.Shutdown())
	}
	for _, n := range c.Nodes() {
		errs = append(errs, n.Stop())
	}
	c.mu.Lock()
	clear(c.nodes)
	clear(c.members)
	c.mu.Unlock()
	if c.Hub != nil {
		errs = append(errs, c.Hub.Close())
	}
	return errors.Join(errs...)
}

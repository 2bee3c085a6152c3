package membership

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/troupe-dev/troupe/actors"
)

// ProviderName is the protocol a [Provider] runs on its node to follow the
// membership.
const ProviderName actors.ProtocolName = "actor-cluster"

// Provider is a protoactor-go cluster.ClusterProvider that follows the
// node's own membership: StartMember starts the "actor-cluster" protocol
// on the node, which follows the membership protocol's view and events
// ([Watch]) and hands protoactor's member list the live members that have
// a remote address, with their kinds. It starts no SWIM of its own: grains
// and Troupe's protocols share one membership, the node's ([Attach]).
// Package grains starts one; a program does not need to.
//
// # Member Ids
//
// protoactor blocks, for good, the Id of a member that leaves its list.
// The Provider names a member name@generation.entry, where entry counts
// the times this node has put that start of the member (its generation)
// in the list: a member that SWIM declares failed and that then refutes
// (alive again, same generation, as after a long pause or a partition)
// re-enters as name@generation.1, not blocked, and hosts grains again; a
// restarted node is a new generation. Ids are this node's own: nothing
// sends them to other nodes (protoactor's gossip, which would, is not
// started; placement is by address), so two nodes may number a member's
// re-entries differently. A member's Id stays the same while it stays
// live with the same kinds, so a refutation that raises its SWIM
// incarnation without a failure in between changes nothing: a new Id
// makes protoactor end the connections to the old Id's address
// (EndpointTerminatedEvent), which Troupe's own traffic shares. A member
// that changes its kinds (Membership.SetKinds) does get a new Id, as
// protoactor reads a member's kinds only when it joins: its connections
// are made again.
type Provider struct {
	node *actors.Node

	mu      sync.Mutex
	cluster *cluster.Cluster // nil until StartMember, and after Shutdown
	ids     ids
}

var _ cluster.ClusterProvider = (*Provider)(nil)

// NewProvider returns a provider for the protoactor cluster on node, which
// must run the membership protocol ([Attach]) before StartMember.
func NewProvider(node *actors.Node) *Provider {
	return &Provider{node: node, ids: ids{listed: map[actors.NodeName]listing{}, entries: map[actors.NodeName]entries{}}}
}

// StartMember starts following the membership: it returns once the "actor-cluster"
// protocol has handed protoactor the view. It fails when the node runs no
// membership protocol, or when it was started before.
func (p *Provider) StartMember(c *cluster.Cluster) error {
	p.mu.Lock()
	if p.cluster != nil {
		p.mu.Unlock()
		return errors.New("membership: the provider was started already")
	}
	p.cluster = c
	p.mu.Unlock()
	if err := p.node.Start(func() actors.Protocol { return &follower{p: p} }); err != nil {
		p.mu.Lock()
		p.cluster = nil
		p.mu.Unlock()
		return fmt.Errorf("membership: following the membership for the actor cluster: %w", err)
	}
	return nil
}

// StartClient is StartMember: the kinds a node hosts are what it announces
// in its membership (Config.Kinds), so a node that hosts none is a client.
func (p *Provider) StartClient(c *cluster.Cluster) error { return p.StartMember(c) }

// Shutdown stops handing protoactor the membership; the node's own
// membership goes on (it is the node's, and Leave or Shutdown it there).
// The protocol stays on the node, idle, until the node stops.
func (p *Provider) Shutdown(bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cluster == nil {
		return errors.New("membership: the provider was not started")
	}
	p.cluster = nil
	return nil
}

// update hands protoactor's member list the live members of v.
func (p *Provider) update(v View) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cluster == nil {
		return
	}
	p.cluster.MemberList.UpdateClusterTopology(p.ids.members(v))
}

// follower is the "actor-cluster" protocol: it follows the membership for
// its Provider.
type follower struct{ p *Provider }

func (f *follower) Name() actors.ProtocolName { return ProviderName }

func (f *follower) Init(ctx *actors.Context) error {
	return Watch(ctx, func(_ *actors.Context, ch Change) error {
		f.p.update(ch.View)
		return nil
	})
}

// ids gives protoactor member Ids to members (see Provider).
type ids struct {
	listed  map[actors.NodeName]listing // the members in protoactor's list now
	entries map[actors.NodeName]entries // of each name's latest generation
}

type listing struct {
	generation uint64
	member     *cluster.Member
}

type entries struct {
	generation uint64
	n          uint64 // times that generation entered the list
}

// members returns protoactor's member list for v: its live members with a
// remote address, each under the Id it was listed with, or a new one if it
// was not listed at the last update (or with other kinds).
func (s *ids) members(v View) cluster.Members {
	var out cluster.Members
	next := map[actors.NodeName]listing{}
	for _, mem := range v.Live() {
		host, ps, err := net.SplitHostPort(mem.Address)
		if err != nil {
			continue // no remote address (the sim network)
		}
		port, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || port == 0 {
			continue
		}
		kinds := slices.Sorted(slices.Values(mem.Kinds))
		l, ok := s.listed[mem.Name]
		if !ok || l.generation != mem.Generation || !slices.Equal(l.member.Kinds, kinds) {
			e := s.entries[mem.Name]
			if e.generation != mem.Generation {
				e = entries{generation: mem.Generation}
			}
			l = listing{generation: mem.Generation, member: &cluster.Member{
				Id:   MemberID(mem.Name, mem.Generation, e.n),
				Host: host, Port: int32(port), Kinds: kinds,
			}}
			e.n++
			s.entries[mem.Name] = e
		}
		next[mem.Name] = l
		out = append(out, l.member)
	}
	s.listed = next
	return out
}

// MemberID is the protoactor member Id of the entry-th time (from 0) this
// node lists the given start (generation) of a node: see [Provider].
func MemberID(name actors.NodeName, generation, entry uint64) string {
	return string(name) + "@" + strconv.FormatUint(generation, 10) + "." + strconv.FormatUint(entry, 10)
}

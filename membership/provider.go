package membership

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/troupe-dev/troupe/actors"
)

// Provider is a protoactor-go cluster.ClusterProvider backed by SWIM: give
// it to cluster.Configure, and the protoactor cluster's member list follows
// the membership view (live members, with their kinds), so grains are
// placed on live nodes only.
type Provider struct {
	cfg Config

	mu     sync.Mutex
	m      *Membership
	cancel func()
}

var _ cluster.ClusterProvider = (*Provider)(nil)

// NewProvider returns a provider that will start a membership from cfg.
// StartMember fills Address and Kinds from the cluster; an empty Name
// becomes the actor system's ID.
func NewProvider(cfg Config) *Provider { return &Provider{cfg: cfg} }

// Membership is the provider's membership, once started (nil before).
func (p *Provider) Membership() *Membership {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m
}

// StartMember joins the cluster as a member hosting the cluster's kinds.
func (p *Provider) StartMember(c *cluster.Cluster) error { return p.start(c) }

// StartClient joins too: SWIM has no passive observers, so a client is a
// member that hosts no kinds (protoactor places no grain on it).
func (p *Provider) StartClient(c *cluster.Cluster) error { return p.start(c) }

func (p *Provider) start(c *cluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return fmt.Errorf("membership: provider needs protoactor remote started: %w", err)
	}
	cfg := p.cfg
	cfg.Address = net.JoinHostPort(host, strconv.Itoa(port))
	cfg.Kinds = c.GetClusterKinds()
	slices.Sort(cfg.Kinds)
	if cfg.Name == "" {
		cfg.Name = actors.NodeName(c.ActorSystem.ID)
	}
	m, err := New(cfg)
	if err != nil {
		return err
	}
	if err := m.Join(context.Background()); err != nil {
		_ = m.Shutdown()
		return err
	}
	var mu sync.Mutex // topology updates in view order
	mu.Lock()
	defer mu.Unlock()
	view, cancel := m.Subscribe(func(Event) {
		mu.Lock()
		defer mu.Unlock()
		c.MemberList.UpdateClusterTopology(Topology(m.View()))
	})
	c.MemberList.UpdateClusterTopology(Topology(view))
	p.mu.Lock()
	p.m, p.cancel = m, cancel
	p.mu.Unlock()
	return nil
}

// Shutdown leaves the cluster (graceful) or just stops (others will
// report this node failed).
func (p *Provider) Shutdown(graceful bool) error {
	p.mu.Lock()
	m, cancel := p.m, p.cancel
	p.m, p.cancel = nil, nil
	p.mu.Unlock()
	if m == nil {
		return errors.New("membership: provider was not started")
	}
	cancel()
	if graceful {
		return m.Leave(5 * time.Second)
	}
	return m.Shutdown()
}

// Topology turns a view's live members into protoactor cluster members.
// A member's Id is its name and generation, so that a restarted node is a
// new member (protoactor blocks the Ids of members that left).
func Topology(v View) cluster.Members {
	var out cluster.Members
	for _, mem := range v.Live() {
		host, p, err := net.SplitHostPort(mem.Address)
		if err != nil {
			continue // not a protoactor node (e.g. on the sim network)
		}
		port, _ := strconv.Atoi(p)
		out = append(out, &cluster.Member{Id: MemberID(mem), Host: host, Port: int32(port), Kinds: mem.Kinds})
	}
	return out
}

// MemberID is the protoactor cluster member Id of a member.
func MemberID(m Member) string { return string(m.Name) + "@" + strconv.FormatUint(m.Generation, 10) }

package grains

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
)

// lookup is the actor cluster's identity lookup (cluster.IdentityLookup):
// a grain lives on the member that rendezvous hashing of its identity
// picks among the live members hosting its kind (as protoactor's disthash
// does), and that member's placement activates it.
type lookup struct {
	g      *Grains
	active atomic.Int64 // grains active on this node

	mu     sync.RWMutex
	rdv    *cluster.Rendezvous
	hosted []string // kinds the live members host, sorted
	listed int      // members in the topology

	sub       *eventstream.Subscription
	placement *actor.PID
}

var _ cluster.IdentityLookup = (*lookup)(nil)

// Setup spawns this node's placement and follows the cluster's topology.
func (l *lookup) Setup(c *cluster.Cluster, _ []string, _ bool) {
	sys := c.ActorSystem
	l.placement, _ = sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		return &placement{g: l.g, rdv: cluster.NewRendezvous(), active: map[string]*actor.PID{}, keys: map[string]string{}}
	}), placementName)
	l.sub = sys.EventStream.Subscribe(func(ev any) {
		if t, ok := ev.(*cluster.ClusterTopology); ok {
			l.onTopology(t)
		}
	})
}

// onTopology runs on the goroutine that changed the member list (the
// "actor-cluster" protocol's).
func (l *lookup) onTopology(t *cluster.ClusterTopology) {
	var hosted []string
	for _, m := range t.Members {
		hosted = append(hosted, m.Kinds...)
	}
	slices.Sort(hosted)
	l.mu.Lock()
	l.rdv.UpdateMembers(t.Members)
	l.hosted = slices.Compact(hosted)
	l.listed = len(t.Members)
	l.mu.Unlock()
	l.g.node.System().Root.Send(l.placement, t)
	l.g.abandon(t.Left)
}

func (l *lookup) members() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.listed
}

func (l *lookup) hostedKinds() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.hosted
}

// Get asks the grain's owner for its activation; nil when no live member
// hosts the kind, or the owner refused or did not answer within
// Config.ActivationTimeout (protoactor's cluster.Request then tries
// again).
func (l *lookup) Get(ci *cluster.ClusterIdentity) *actor.PID {
	return l.get(ci, l.g.cfg.ActivationTimeout)
}

// get is Get within at most timeout.
func (l *lookup) get(ci *cluster.ClusterIdentity, timeout time.Duration) *actor.PID {
	timeout = min(timeout, l.g.cfg.ActivationTimeout)
	if timeout <= 0 {
		return nil
	}
	l.mu.RLock()
	owner := l.rdv.GetByClusterIdentity(ci)
	l.mu.RUnlock()
	if owner == "" {
		return nil
	}
	res, err := l.g.ask(actor.NewPID(owner, placementName), &cluster.ActivationRequest{ClusterIdentity: ci}, timeout)
	if err != nil {
		return nil
	}
	if r, ok := res.(*cluster.ActivationResponse); ok && !r.Failed {
		return r.Pid
	}
	return nil
}

// RemovePid forgets a cached activation.
func (l *lookup) RemovePid(ci *cluster.ClusterIdentity, pid *actor.PID) {
	l.g.cluster.PidCache.RemoveByValue(ci.Identity, ci.Kind, pid)
}

// Shutdown stops following the topology and stops the placement and its
// grains.
func (l *lookup) Shutdown() {
	sys := l.g.node.System()
	sys.EventStream.Unsubscribe(l.sub)
	sys.Root.Stop(l.placement) // not waited for: the node may have stopped its actor system already
}

// placement activates this node's grains: one protoactor actor, its
// grains its children.
type placement struct {
	g      *Grains
	rdv    *cluster.Rendezvous
	active map[string]*actor.PID // by kind/identity
	keys   map[string]string     // kind/identity by grain process id
}

func (p *placement) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *cluster.ActivationRequest:
		p.activate(ctx, m.ClusterIdentity)
	case *cluster.ClusterTopology:
		p.rdv.UpdateMembers(m.Members)
		p.move(ctx)
	case *actor.Terminated:
		if key, ok := p.keys[m.Who.Id]; ok {
			delete(p.keys, m.Who.Id)
			delete(p.active, key)
			p.g.lookup.active.Add(-1)
		}
	}
}

// activate answers an activation request: the grain's process, activated
// if need be, or Failed when this node does not own the grain by its view
// (the caller's view differs; it asks again) or hosts as many grains as
// Config.MaxActivations.
func (p *placement) activate(ctx actor.Context, ci *cluster.ClusterIdentity) {
	// Requests from the network were checked by admit; this node's own
	// requests come from Get, for a kind a live member hosts.
	if err := p.g.checkActivation(ci); err != nil {
		p.refuse(ctx, ci, err.Error())
		return
	}
	key := ci.AsKey()
	if pid, ok := p.active[key]; ok {
		ctx.Respond(&cluster.ActivationResponse{Pid: pid})
		return
	}
	if owner := p.rdv.GetByClusterIdentity(ci); owner != ctx.Self().Address {
		p.refuse(ctx, ci, "this node does not own the grain by its view of the members (owner: "+owner+")")
		return
	}
	if len(p.active) >= p.g.cfg.MaxActivations {
		p.refuse(ctx, ci, "this node hosts as many grains as Config.MaxActivations allows")
		return
	}
	kind := p.g.kinds[ci.Kind]
	pid, err := ctx.SpawnNamed(cluster.WithClusterIdentity(kind.Props, ci), ci.Kind+ctx.ActorSystem().ProcessRegistry.NextId())
	if err != nil {
		p.refuse(ctx, ci, err.Error())
		return
	}
	p.active[key], p.keys[pid.Id] = pid, key
	p.g.lookup.active.Add(1)
	ctx.Respond(&cluster.ActivationResponse{Pid: pid})
}

func (p *placement) refuse(ctx actor.Context, ci *cluster.ClusterIdentity, why string) {
	from := "this node"
	if s := ctx.Sender(); s != nil {
		from = s.Address
	}
	p.g.log.Warn(kindRefused).Str("grain", ci.GetKind()+"/"+ci.GetIdentity()).Str("from", from).Str("reason", why).Msg(kindRefused)
	ctx.Respond(&cluster.ActivationResponse{Failed: true})
}

// move stops the grains this node no longer owns (a member joined that
// owns them now): their state is lost, and the next request activates
// them on their owner. A caller that still holds the old process gets a
// dead letter and asks the owner.
func (p *placement) move(ctx actor.Context) {
	self := ctx.Self().Address
	for key, pid := range p.active {
		kind, identity, _ := strings.Cut(key, "/") // kind names hold no '/'
		if p.rdv.GetByClusterIdentity(&cluster.ClusterIdentity{Kind: kind, Identity: identity}) != self {
			ctx.Stop(pid)
		}
	}
}

package grains

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	paremote "github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/security"
	"github.com/troupe-dev/troupe/transport"
	"github.com/troupe-dev/troupe/transport/remote"
)

// Errors of grain requests and of Start. Each is wrapped with what was
// asked and why.
var (
	// ErrBadIdentity: a grain identity that is empty, too long
	// (Config.MaxIdentity) or not UTF-8.
	ErrBadIdentity = errors.New("grains: bad grain identity")
	// ErrUnknownKind: a kind no live member hosts (or not a kind name).
	ErrUnknownKind = errors.New("grains: unknown grain kind")
	// ErrTimeout: the grain did not answer in time (its node may have
	// failed and the grain not yet moved), or its activation was refused.
	ErrTimeout = errors.New("grains: the grain did not answer")
	// ErrReply: the grain answered something that is not a protobuf message.
	ErrReply = errors.New("grains: the grain's reply is not a protobuf message")
	// ErrStopped: the actor cluster of this node was stopped.
	ErrStopped = errors.New("grains: the actor cluster is stopped")
)

// placementName is the protoactor process that activates this node's
// grains; a grain is its child, placementName/<kind>$<n>.
const placementName = "grain-placement"

// Grains is protoactor's actor cluster on one Troupe node: on the node's
// actor system and remote, with the node's membership.
type Grains struct {
	node     *actors.Node
	net      *remote.Network
	cfg      Config
	kinds    map[string]*cluster.Kind // hosted here, with bounded mailboxes
	cluster  *cluster.Cluster
	provider *membership.Provider
	lookup   *lookup
	log      *security.LogLimiter

	// futures are the replies this node waits for: protoactor futures, by
	// process id, each with the address of the member asked. The port
	// takes a reply for these alone, and a member leaving the topology
	// ends the waits for its replies (lookup.onTopology).
	futures sync.Map

	stopOnce sync.Once
	stopped  atomic.Bool
	inFlight sync.WaitGroup // RequestFuture's goroutines
}

// Start starts protoactor's actor cluster on node: protoactor's cluster
// object on the node's actor system and its remote (net, the network the
// node is attached to: the actor cluster needs protoactor remote, not the
// sim network), this node's grain placement, and the "actor-cluster"
// protocol that hands the cluster the node's membership
// (membership.Provider). The node must run the membership protocol
// (membership.Attach) and announce cfg.KindNames() in it. From then on
// the node's port also takes the actor cluster's messages (see the
// package documentation for what it admits). Stop undoes it; stopping the
// node stops it too.
func Start(node *actors.Node, net *remote.Network, cfg Config) (*Grains, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if node == nil || net == nil {
		return nil, errors.New("grains: Start needs the node and the remote network it is attached to (transport/remote)")
	}
	if slices.Contains(node.Protocols(), membership.ProviderName) {
		return nil, fmt.Errorf("grains: node %s runs the actor cluster already (protocol %s): Start it once per node", node.Name(), membership.ProviderName)
	}
	if _, ok := net.Resolve(string(node.Name())); !ok {
		return nil, fmt.Errorf("grains: node %s is not attached to the given network: the actor cluster runs on protoactor remote (transport/remote), not on the sim network", node.Name())
	}
	g := &Grains{node: node, net: net, cfg: cfg, kinds: map[string]*cluster.Kind{},
		log: security.NewLogLimiter(node.Logger().With().Str("component", "grains").Logger(), 10, 10*time.Second)}
	for _, k := range cfg.Kinds {
		// A copy: the caller's Kind is left as it is.
		g.kinds[k.Kind] = &cluster.Kind{Kind: k.Kind, StrategyBuilder: k.StrategyBuilder,
			Props: k.Props.Clone(actor.WithMailbox(actor.BoundedDropping(cfg.Mailbox)))}
	}
	sys := node.System()
	g.provider = membership.NewProvider(node)
	g.lookup = &lookup{g: g, rdv: cluster.NewRendezvous()}
	ccfg := cluster.Configure(cfg.ClusterName, g.provider, g.lookup, nil, cluster.WithRequestTimeout(cfg.RequestTimeout),
		cluster.WithClusterContextProducer(func(*cluster.Cluster) cluster.Context { return clusterContext{g} }))
	c := cluster.New(sys, ccfg)
	// protoactor's StartMember would start a second remote on the actor
	// system (and its gossip and pub-sub): the actor cluster takes the
	// remote the node runs, and of StartMember's steps the identity
	// lookup and the provider.
	c.Remote = paremote.GetRemote(sys)
	c.IdentityLookup = g.lookup
	g.cluster = c
	if err := net.AdmitActorMessages(string(node.Name()), g.admit); err != nil {
		g.log.Close()
		return nil, fmt.Errorf("grains: %w", err)
	}
	g.lookup.Setup(c, cfg.KindNames(), false)
	if err := g.provider.StartMember(c); err != nil {
		_ = net.AdmitActorMessages(string(node.Name()), nil)
		g.lookup.Shutdown()
		g.log.Close()
		return nil, fmt.Errorf("grains: node %s: %w", node.Name(), err)
	}
	return g, nil
}

// Cluster is protoactor's cluster object, for protoactor's own API:
// its Request and RequestFuture (and so generated grain clients) are
// [Grains.Request]'s, with the timeout of their call options
// (cluster.WithTimeout; retry options are not used: Request tries again
// until the deadline).
func (g *Grains) Cluster() *cluster.Cluster { return g.cluster }

// Request sends msg to the grain identity of kind, activating it on the
// member that owns it if it is not active, and waits for its reply: until
// ctx's deadline when it has one, Config.RequestTimeout otherwise. It
// fails with ErrBadIdentity, ErrUnknownKind (no live member hosts the
// kind), ErrTimeout or ErrStopped. Safe from any goroutine, but not from
// a Troupe protocol's handler, which must not block.
func (g *Grains) Request(ctx context.Context, identity, kind string, msg proto.Message) (proto.Message, error) {
	if g.stopped.Load() {
		return nil, ErrStopped
	}
	if err := checkIdentity(identity, g.cfg.MaxIdentity); err != nil {
		return nil, fmt.Errorf("%w (kind %q)", err, kind)
	}
	if err := transport.ValidateName("grain kind", kind); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownKind, err)
	}
	if msg == nil {
		return nil, fmt.Errorf("grains: a request to grain %s/%s without a message", kind, identity)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("grain %s/%s: %w", kind, identity, err)
	}
	if hosted := g.lookup.hostedKinds(); !slices.Contains(hosted, kind) {
		return nil, fmt.Errorf("%w: no live member hosts kind %q; the members host %v", ErrUnknownKind, kind, hosted)
	}
	timeout := g.cfg.RequestTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("grain %s/%s: %w", kind, identity, context.DeadlineExceeded)
	}
	end := time.Now().Add(timeout)
	ci := cluster.NewClusterIdentity(identity, kind)
	cache := g.cluster.PidCache
	var last error
	for wait := retryFirst; ; wait = min(2*wait, retryMax) {
		pid, _ := cache.Get(identity, kind)
		if pid == nil {
			if pid = g.lookup.get(ci, time.Until(end)); pid != nil {
				cache.Set(identity, kind, pid)
			} else {
				last = errors.New("its owner did not activate it (its node may have failed and the members not yet agree)")
			}
		}
		if pid != nil {
			rep, err := g.ask(pid, msg, time.Until(end))
			if err == nil {
				m, ok := rep.(proto.Message)
				if !ok {
					return nil, fmt.Errorf("%w: grain %s/%s answered %T", ErrReply, kind, identity, rep)
				}
				return m, nil
			}
			// A dead letter: the grain stopped or moved. A timeout: its
			// node may have failed. Ask the owner again.
			cache.RemoveByValue(identity, kind, pid)
			last = fmt.Errorf("its activation at %s did not answer: %w", pid.Address, err)
		}
		if g.stopped.Load() {
			return nil, ErrStopped
		}
		t := time.NewTimer(min(wait, time.Until(end)))
		select {
		case <-ctx.Done():
			t.Stop()
			if ctx.Err() == context.Canceled {
				return nil, fmt.Errorf("grain %s/%s: %w (last: %v)", kind, identity, ctx.Err(), last)
			}
		case <-t.C:
		}
		if time.Until(end) <= 0 || ctx.Err() != nil {
			return nil, fmt.Errorf("%w: grain %s/%s within %v: %v", ErrTimeout, kind, identity, timeout.Round(time.Millisecond), last)
		}
	}
}

// Retries of a grain request whose activation is not found or does not
// answer: after 20 ms, doubling to 500 ms, until the request's deadline.
const (
	retryFirst = 20 * time.Millisecond
	retryMax   = 500 * time.Millisecond
)

// Members is the number of members the actor cluster lists: the live
// members of the node's membership that have a remote address.
func (g *Grains) Members() int { return g.lookup.members() }

// Active is the number of grains active on this node.
func (g *Grains) Active() int { return int(g.lookup.active.Load()) }

// Stop stops the actor cluster on this node: the node's port takes
// Troupe's messages alone again, the grains active here stop (their state
// is lost; they are activated elsewhere when called), and the cluster no
// longer follows the membership. The node and its membership go on.
// It waits for the requests of protoactor's RequestFuture in flight
// (each ends within its timeout). Calling Stop again does nothing.
func (g *Grains) Stop() error {
	var err error
	g.stopOnce.Do(func() {
		g.stopped.Store(true)
		err = g.provider.Shutdown(false)
		_ = g.net.AdmitActorMessages(string(g.node.Name()), nil) // fails only once the node has stopped
		g.inFlight.Wait()
		g.lookup.Shutdown()
		g.log.Close()
	})
	return err
}

// Logging kinds (security.LogLimiter): fixed strings.
const (
	kindRefused = "refused a grain activation"
)

// admit decides what of the actor cluster's traffic the node's port
// passes on (remote.ActorMessages): activation requests for a kind hosted
// here with a valid identity to the placement, messages to grains, and
// replies to this node's requests.
func (g *Grains) admit(target *actor.PID, msg proto.Message, hasSender bool) error {
	typ := string(msg.ProtoReflect().Descriptor().FullName())
	switch id := target.Id; {
	case id == placementName:
		req, ok := msg.(*cluster.ActivationRequest)
		if !ok {
			return fmt.Errorf("the grain placement takes cluster.ActivationRequest, not %s", typ)
		}
		if !hasSender {
			return errors.New("an activation request names no sender to answer")
		}
		return g.checkActivation(req.GetClusterIdentity())
	case strings.HasPrefix(id, placementName+"/"):
		if strings.HasPrefix(typ, "cluster.") && typ != "cluster.GrainRequest" {
			return fmt.Errorf("a grain takes its kind's messages (or cluster.GrainRequest of generated grains), not %s", typ)
		}
		return nil
	case strings.HasPrefix(id, "future$"):
		if _, ok := g.futures.Load(id); !ok {
			return fmt.Errorf("%q is not a request of the actor cluster waiting for a reply", id)
		}
		return nil
	default:
		return fmt.Errorf("process %q is none of the actor cluster's: the grain placement %q, a grain %q/…, or a reply's future$…", id, placementName, placementName)
	}
}

// checkActivation checks what an activation request names: a kind hosted
// here and a valid identity.
func (g *Grains) checkActivation(ci *cluster.ClusterIdentity) error {
	if ci == nil {
		return errors.New("an activation request names no grain (cluster_identity)")
	}
	if g.kinds[ci.Kind] == nil {
		return fmt.Errorf("%w: node %s hosts kinds %v, not %q", ErrUnknownKind, g.node.Name(), g.cfg.KindNames(), ci.Kind)
	}
	return checkIdentity(ci.Identity, g.cfg.MaxIdentity)
}

// ask sends msg to pid and waits at most timeout for the reply, through a
// future the port takes a reply for (futures). If pid's member leaves the
// topology meanwhile, the wait ends at once with actor.ErrDeadLetter.
func (g *Grains) ask(pid *actor.PID, msg any, timeout time.Duration) (any, error) {
	sys := g.node.System()
	f := actor.NewFuture(sys, timeout)
	id := f.PID().Id
	g.futures.Store(id, pid.Address)
	defer g.futures.Delete(id)
	sys.Root.RequestWithCustomSender(pid, msg, f.PID())
	return f.Result()
}

// clusterContext is protoactor's cluster context (cluster.Request,
// generated grain clients) on Grains.Request.
type clusterContext struct{ g *Grains }

func (c clusterContext) Request(identity, kind string, message any, opts ...cluster.GrainCallOption) (any, error) {
	call := cluster.NewGrainCallOptions(c.g.cluster)
	for _, o := range opts {
		o(call)
	}
	msg, ok := message.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("grains: a grain request is a protobuf message, not %T", message)
	}
	ctx, cancel := context.WithTimeout(context.Background(), call.Timeout)
	defer cancel()
	return c.g.Request(ctx, identity, kind, msg)
}

// RequestFuture runs Request on a goroutine of its own (Stop waits for
// it) and hands its result to the future; an error leaves the future to
// time out.
func (c clusterContext) RequestFuture(identity, kind string, message any, opts ...cluster.GrainCallOption) (*actor.Future, error) {
	call := cluster.NewGrainCallOptions(c.g.cluster)
	for _, o := range opts {
		o(call)
	}
	sys := c.g.node.System()
	f := actor.NewFuture(sys, call.Timeout)
	c.g.inFlight.Go(func() {
		rep, err := c.Request(identity, kind, message, opts...)
		if err == nil {
			sys.Root.Send(f.PID(), rep)
		}
	})
	return f, nil
}

// abandon ends the waits for replies from the members that left: their
// futures get a dead letter, as protoactor gives a request to a process
// that is gone, and Request asks the grain's new owner.
func (g *Grains) abandon(left []*cluster.Member) {
	if len(left) == 0 {
		return
	}
	gone := map[string]bool{}
	for _, m := range left {
		gone[m.Address()] = true
	}
	root := g.node.System().Root
	g.futures.Range(func(id, addr any) bool {
		if gone[addr.(string)] {
			root.Send(actor.NewPID(g.node.Address(), id.(string)), &actor.DeadLetterResponse{})
		}
		return true
	})
}

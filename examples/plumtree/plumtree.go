package plumtree

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// Name is the protocol's name on every node.
const Name actors.ProtocolName = "plumtree"

// BroadcastRequest asks the local Plumtree protocol to broadcast Payload;
// the reply is the message's id.
type BroadcastRequest struct {
	actors.Returns[ID]
	Payload []byte
}

// Delivered is published on a node for every message it delivers,
// exactly once per message.
type Delivered struct {
	Node    actors.NodeName
	ID      ID
	Payload []byte
}

// ID names a broadcast: its origin and the origin's sequence number.
type ID struct {
	Origin actors.NodeName
	Seq    uint64
}

func (id ID) String() string { return fmt.Sprintf("%s/%d", id.Origin, id.Seq) }

// Gossip is the paper's GOSSIP(m, mID, round, sender): the payload, pushed
// eagerly down the tree.
type Gossip struct {
	ID      ID
	Round   uint32
	Payload []byte
}

// IHave is a batch of the paper's IHAVE(mID, round, sender): the ids of
// messages this node has, announced lazily to its lazy peers.
type IHave struct {
	IDs    []ID
	Rounds []uint32
}

// Prune is the paper's PRUNE(sender): "you sent me a duplicate, stop
// pushing to me eagerly".
type Prune struct{}

// Graft is the paper's GRAFT(mID, round, sender): "I miss mID; send it and
// push to me eagerly from now on".
type Graft struct {
	ID    ID
	Round uint32
}

// Join tells a node it was picked as a peer, so it takes the sender as
// one too: links are symmetric, as HyParView's active view is, and a node
// nobody picked still hears of every message.
type Join struct{}

var (
	_ = messages.Register[Join]("plumtree.Join")
	_ = messages.Register[Gossip]("plumtree.Gossip")
	_ = messages.Register[IHave]("plumtree.IHave")
	_ = messages.Register[Prune]("plumtree.Prune")
	_ = messages.Register[Graft]("plumtree.Graft")
)

// Config sets up the protocol.
type Config struct {
	// Eager and Lazy are how many random live members a node picks as
	// eager and as lazy peers (the paper's eagerPushPeers and
	// lazyPushPeers, drawn from a partial view as HyParView's active view
	// would give). Links are symmetric (Join): the nodes that picked this
	// one are its lazy peers too, so its view is larger on average.
	Eager, Lazy int
	// LazyInterval is how often queued IHAVE announcements leave, one
	// datagram per lazy peer (the paper's lazy push policy, batched).
	LazyInterval time.Duration
	// Timeout is the paper's timeout1: how long a node waits, after an
	// IHAVE for a message it lacks, for the message to arrive before it
	// grafts the announcer; later announcers are grafted each Timeout
	// after (timeout2).
	Timeout time.Duration
	// Retain is how long a delivered message is kept, to answer grafts
	// and to recognise duplicates.
	Retain time.Duration
}

// DefaultConfig: 3 eager and 3 lazy peers, IHAVEs every 50 ms, a graft
// after 150 ms, messages kept for a minute.
func DefaultConfig() Config {
	return Config{Eager: 3, Lazy: 3, LazyInterval: 50 * time.Millisecond, Timeout: 150 * time.Millisecond, Retain: time.Minute}
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	if c.Eager < 1 || c.Lazy < 0 {
		return fmt.Errorf("plumtree: Eager (%d) must be at least 1 and Lazy (%d) at least 0", c.Eager, c.Lazy)
	}
	if c.LazyInterval <= 0 || c.Timeout <= 0 || c.Retain <= 0 {
		return fmt.Errorf("plumtree: LazyInterval (%v), Timeout (%v) and Retain (%v) must be positive", c.LazyInterval, c.Timeout, c.Retain)
	}
	return nil
}

type lazyTick struct{}

type missingTimer struct{ id ID }

type gcTick struct{}

type received struct {
	payload []byte
	round   uint32
	at      time.Time
}

type announcement struct {
	from  actors.NodeName
	round uint32
}

// Plumtree is the protocol's state on one node.
type Plumtree struct {
	cfg       Config
	seq       uint64
	eager     []actors.NodeName
	lazy      []actors.NodeName
	received  map[ID]received
	missing   map[ID][]announcement // IHAVEs for messages not received
	grafts    map[ID]int            // grafts sent for each of them
	timers    map[ID]actors.TimerID
	lazyQueue map[actors.NodeName]*IHave
	ready     bool      // the first view came: the peers are drawn
	early     []*Gossip // broadcasts asked for before it, pushed when it comes
}

// New returns a factory for nodes' Start. The node must run membership
// (membership.Attach), which gives the peers and the datagram channel.
func New(cfg Config) actors.Factory {
	return func() actors.Protocol { return &Plumtree{cfg: cfg} }
}

func (p *Plumtree) Name() actors.ProtocolName { return Name }

func (p *Plumtree) Init(ctx *actors.Context) error {
	if err := p.cfg.Validate(); err != nil {
		return err
	}
	p.received = map[ID]received{}
	p.missing = map[ID][]announcement{}
	p.grafts = map[ID]int{}
	p.timers = map[ID]actors.TimerID{}
	p.lazyQueue = map[actors.NodeName]*IHave{}
	// Every message of this protocol is small: datagrams, the repair by
	// IHAVE and GRAFT making up for the ones lost.
	if err := ctx.UseChannel(actors.Datagram); err != nil {
		return err
	}
	actors.OnRequest(ctx, p.onBroadcast)
	actors.OnMessage(ctx, func(_ *actors.Context, from actors.NodeName, _ *Join) error { p.addLazy(from); return nil })
	actors.OnMessage(ctx, p.onGossip)
	actors.OnMessage(ctx, p.onIHave)
	actors.OnMessage(ctx, p.onPrune)
	actors.OnMessage(ctx, p.onGraft)
	actors.OnTimer(ctx, p.onMissing)
	actors.OnTimer(ctx, func(ctx *actors.Context, _ lazyTick) error { p.flushLazy(ctx); return nil })
	actors.OnTimer(ctx, p.onGC)
	ctx.Every(p.cfg.LazyInterval, lazyTick{})
	ctx.Every(p.cfg.Retain/4, gcTick{})
	return membership.Watch(ctx, p.onMembership)
}

// onMembership draws the peers from the first view and replaces a failed
// or departed peer by a random live member that is not one yet.
func (p *Plumtree) onMembership(ctx *actors.Context, ch membership.Change) error {
	live := ch.View.LiveNames()
	if ch.Initial() {
		others := slices.DeleteFunc(slices.Clone(live), func(n actors.NodeName) bool { return n == ctx.Node() })
		ctx.Rand().Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
		p.eager = take(others, p.cfg.Eager)
		p.lazy = take(others[len(p.eager):], p.cfg.Lazy)
		for _, n := range append(slices.Clone(p.eager), p.lazy...) {
			p.join(ctx, n)
		}
		p.ready = true
		for _, m := range p.early {
			p.eagerPush(ctx, m, "")
			p.lazyPush(ctx, m, "")
		}
		p.early = nil
		return nil
	}
	who := ch.Event.Of().Name
	switch ch.Event.(type) {
	case *membership.MemberFailed, *membership.MemberLeft:
		wasEager := slices.Contains(p.eager, who)
		p.eager, p.lazy = without(p.eager, who), without(p.lazy, who)
		delete(p.lazyQueue, who)
		if n, ok := p.pick(ctx, live); ok {
			if wasEager {
				p.eager = append(p.eager, n)
			} else {
				p.lazy = append(p.lazy, n)
			}
			p.join(ctx, n)
		}
	case *membership.MemberJoined:
		// A newcomer is nobody's peer yet: it takes the place of a lazy
		// peer with probability 1/N, so views stay random as N grows.
		if who != ctx.Node() && !p.isPeer(who) && len(live) > 0 && ctx.Rand().IntN(len(live)) == 0 {
			if len(p.eager) < p.cfg.Eager {
				p.eager = append(p.eager, who)
			} else {
				p.lazy = append(p.lazy, who)
			}
			p.join(ctx, who)
		}
	}
	return nil
}

func (p *Plumtree) onBroadcast(ctx *actors.Context, req *BroadcastRequest) (ID, error) {
	p.seq++
	id := ID{Origin: ctx.Node(), Seq: p.seq}
	m := &Gossip{ID: id, Payload: req.Payload}
	p.deliver(ctx, m)
	if !p.ready {
		p.early = append(p.early, m)
		return id, nil
	}
	p.eagerPush(ctx, m, "")
	p.lazyPush(ctx, m, "")
	return id, nil
}

// onGossip is the paper's "upon Receive(GOSSIP, m, mID, round, sender)".
func (p *Plumtree) onGossip(ctx *actors.Context, from actors.NodeName, m *Gossip) error {
	if _, dup := p.received[m.ID]; dup {
		// A second copy: the tree has a redundant edge; cut it.
		p.demote(from)
		return ctx.Send(from, &Prune{})
	}
	p.deliver(ctx, m)
	if t, ok := p.timers[m.ID]; ok {
		ctx.Cancel(t)
		delete(p.timers, m.ID)
	}
	delete(p.missing, m.ID)
	delete(p.grafts, m.ID)
	fwd := &Gossip{ID: m.ID, Round: m.Round + 1, Payload: m.Payload}
	p.eagerPush(ctx, fwd, from)
	p.lazyPush(ctx, fwd, from)
	p.addEager(ctx, from)
	return nil
}

// onIHave is "upon Receive(IHAVE, mID, round, sender)", for a batch.
func (p *Plumtree) onIHave(ctx *actors.Context, from actors.NodeName, m *IHave) error {
	if len(m.Rounds) != len(m.IDs) {
		return fmt.Errorf("plumtree: an IHAVE from %s with %d ids and %d rounds", from, len(m.IDs), len(m.Rounds))
	}
	p.addLazy(from)
	for i, id := range m.IDs {
		if _, ok := p.received[id]; ok {
			continue
		}
		if len(p.missing[id]) < 8 { // bounded: a few announcers are enough
			p.missing[id] = append(p.missing[id], announcement{from, m.Rounds[i]})
		}
		if _, ok := p.timers[id]; !ok {
			p.timers[id] = ctx.After(p.cfg.Timeout, missingTimer{id})
		}
	}
	return nil
}

// maxGrafts bounds the grafts for one message: after that many (about
// 2.4 s at the default Timeout) the announcers no longer have it (it
// outlived their Retain) or cannot be reached, and the node gives up
// rather than keep a timer for it forever.
const maxGrafts = 16

// onMissing is "upon Timer(mID)": graft the first announcer, and wait for
// the next.
func (p *Plumtree) onMissing(ctx *actors.Context, t missingTimer) error {
	delete(p.timers, t.id)
	anns := p.missing[t.id]
	if len(anns) == 0 {
		return nil
	}
	if p.grafts[t.id] >= maxGrafts {
		ctx.Log().Warn().Str("message", t.id.String()).Int("grafts", maxGrafts).Msg("giving up on a message its announcers did not send")
		delete(p.missing, t.id)
		delete(p.grafts, t.id)
		return nil
	}
	p.grafts[t.id]++
	a := anns[0]
	// The announcer goes to the back: if this graft is lost too, the
	// others are tried, then this one again.
	p.missing[t.id] = append(anns[1:], a)
	p.timers[t.id] = ctx.After(p.cfg.Timeout, missingTimer{t.id})
	p.addEager(ctx, a.from)
	return ctx.Send(a.from, &Graft{ID: t.id, Round: a.round})
}

func (p *Plumtree) onPrune(_ *actors.Context, from actors.NodeName, _ *Prune) error {
	p.demote(from)
	return nil
}

func (p *Plumtree) onGraft(ctx *actors.Context, from actors.NodeName, g *Graft) error {
	p.addEager(ctx, from)
	if r, ok := p.received[g.ID]; ok {
		return p.push(ctx, from, &Gossip{ID: g.ID, Round: r.round, Payload: r.payload})
	}
	return nil
}

func (p *Plumtree) onGC(ctx *actors.Context, _ gcTick) error {
	cutoff := ctx.Now().Add(-p.cfg.Retain)
	for id, r := range p.received {
		if r.at.Before(cutoff) {
			delete(p.received, id)
		}
	}
	return nil
}

func (p *Plumtree) deliver(ctx *actors.Context, m *Gossip) {
	p.received[m.ID] = received{payload: m.Payload, round: m.Round, at: ctx.Now()}
	ctx.Notify(&Delivered{Node: ctx.Node(), ID: m.ID, Payload: m.Payload})
}

func (p *Plumtree) eagerPush(ctx *actors.Context, m *Gossip, from actors.NodeName) {
	for _, n := range p.eager {
		if n == from || n == m.ID.Origin {
			continue
		}
		if err := p.push(ctx, n, m); err != nil {
			ctx.Log().Debug().Err(err).Str("peer", string(n)).Msg("eager push not sent")
		}
	}
}

// push sends a payload by datagram, or on the stream when it is too large
// for one.
func (p *Plumtree) push(ctx *actors.Context, to actors.NodeName, m *Gossip) error {
	err := ctx.Send(to, m)
	if errors.Is(err, transport.ErrTooLarge) {
		err = ctx.SendOn(actors.Stream, to, m)
	}
	return err
}

func (p *Plumtree) lazyPush(_ *actors.Context, m *Gossip, from actors.NodeName) {
	for _, n := range p.lazy {
		if n == from || n == m.ID.Origin {
			continue
		}
		q := p.lazyQueue[n]
		if q == nil {
			q = &IHave{}
			p.lazyQueue[n] = q
		}
		q.IDs = append(q.IDs, m.ID)
		q.Rounds = append(q.Rounds, m.Round)
	}
}

// flushLazy sends each lazy peer its queued IHAVEs, as many per datagram
// as fit.
func (p *Plumtree) flushLazy(ctx *actors.Context) {
	const perDatagram = 32
	for n, q := range p.lazyQueue {
		for len(q.IDs) > 0 {
			k := min(len(q.IDs), perDatagram)
			if err := ctx.Send(n, &IHave{IDs: q.IDs[:k], Rounds: q.Rounds[:k]}); err != nil {
				ctx.Log().Debug().Err(err).Str("peer", string(n)).Msg("IHAVE not sent")
			}
			q.IDs, q.Rounds = q.IDs[k:], q.Rounds[k:]
		}
		delete(p.lazyQueue, n)
	}
}

// addEager makes n an eager peer, from lazy or new to the view.
func (p *Plumtree) addEager(_ *actors.Context, n actors.NodeName) {
	if slices.Contains(p.eager, n) {
		return
	}
	p.lazy = without(p.lazy, n)
	p.eager = append(p.eager, n)
}

// addLazy makes n a lazy peer if it is no peer yet (a node that picked
// this one, or announces to it).
func (p *Plumtree) addLazy(n actors.NodeName) {
	if !p.isPeer(n) {
		p.lazy = append(p.lazy, n)
	}
}

// join tells n it is now a peer of this node.
func (p *Plumtree) join(ctx *actors.Context, n actors.NodeName) {
	if err := ctx.Send(n, &Join{}); err != nil {
		ctx.Log().Debug().Err(err).Str("peer", string(n)).Msg("join not sent")
	}
}

// demote makes the eager peer n lazy (PRUNE, or a duplicate from it).
func (p *Plumtree) demote(n actors.NodeName) {
	if !slices.Contains(p.eager, n) {
		return
	}
	p.eager = without(p.eager, n)
	p.lazy = append(p.lazy, n)
}

func (p *Plumtree) isPeer(n actors.NodeName) bool {
	return slices.Contains(p.eager, n) || slices.Contains(p.lazy, n)
}

// pick is a random live member that is neither this node nor a peer.
func (p *Plumtree) pick(ctx *actors.Context, live []actors.NodeName) (actors.NodeName, bool) {
	var free []actors.NodeName
	for _, n := range live {
		if n != ctx.Node() && !p.isPeer(n) {
			free = append(free, n)
		}
	}
	if len(free) == 0 {
		return "", false
	}
	return free[ctx.Rand().IntN(len(free))], true
}

func take(s []actors.NodeName, n int) []actors.NodeName { return slices.Clone(s[:min(n, len(s))]) }

func without(s []actors.NodeName, n actors.NodeName) []actors.NodeName {
	return slices.DeleteFunc(s, func(x actors.NodeName) bool { return x == n })
}

package mutex

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/membership"
	pb "github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// Config sets up the Ricart–Agrawala protocol.
type Config struct {
	// Name is the protocol's name, the same on every member. Several
	// critical sections are several protocols with different names.
	// Default Name.
	Name actors.ProtocolName
	// Members, when not empty, are the nodes that share the critical
	// section (this node may be listed or not). When empty, the members are
	// the live nodes of the membership view, and membership.Attach must
	// have run on the node. Either way, membership events change the
	// members when the node runs the membership protocol.
	Members []actors.NodeName
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	if err := transport.ValidateName("protocol", cmp.Or(c.Name, Name)); err != nil {
		return fmt.Errorf("%w: Name: %v", ErrInvalidConfig, err)
	}
	for _, m := range c.Members {
		if err := transport.ValidateName("node", m); err != nil {
			return fmt.Errorf("%w: Members: %v", ErrInvalidConfig, err)
		}
	}
	return nil
}

// DefaultConfig returns the defaults: the protocol named Name
// among the live members of the membership view.
func DefaultConfig() Config {
	return Config{
		Name: Name, // one critical section per node set
	}
}

// New returns the factory of the Ricart–Agrawala protocol
// (Ricart and Agrawala, 1981), or cfg.Validate's error. A node that
// wants the critical section
// stamps a request with its Lamport clock and sends it to every other
// member; a member answers at once unless it holds the section or wants it
// with an earlier (timestamp, node name), in which case it defers the reply
// until it leaves. A node enters when every member has replied: 2(N−1)
// messages per entry among N members. Messages go through
// Context.SendReliable, as the algorithm assumes reliable channels.
//
// Members that fail or leave (membership.MemberFailed, MemberLeft) are no
// longer waited for and their deferred requests are dropped; members that
// join (MemberJoined), or whose request shows they exist, are sent the
// current request and waited for. Start the factory on every member.
func New(cfg Config) (actors.Factory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Name = cmp.Or(cfg.Name, Name)
	return func() actors.Protocol { return &ricart{cfg: cfg} }, nil
}

type state int

const (
	idle   state = iota
	wanted       // a request is out
	held         // in the critical section
)

func (s state) String() string {
	switch s {
	case wanted:
		return "wanted"
	case held:
		return "held"
	}
	return "idle"
}

type ricart struct {
	cfg   Config
	self  actors.NodeName
	epoch uint64 // this incarnation, echoed by replies

	members map[actors.NodeName]bool // the other members
	gone    map[actors.NodeName]bool // declared failed or left, until they join again
	// epochs: the latest incarnation heard from each node (requests and
	// hellos carry it); goneEpoch: the one that was declared failed or
	// gone. A message from a later incarnation of a gone node brings it
	// back at once: a restarted node that asks while this node still holds
	// it failed would otherwise be answered without being waited for, and
	// both could enter (the simulation's restarts profile found it).
	epochs, goneEpoch map[actors.NodeName]uint64
	// generation is this node's membership generation (0 with a fixed
	// Config.Members); gens the latest generation of each member, from
	// its hellos and requests and from membership's joins. A failure
	// reported for an earlier generation than one that already spoke is
	// an earlier incarnation's, reported late: it must not stop the wait
	// for the successor's reply.
	generation uint64
	gens       map[actors.NodeName]uint64
	ready      bool // members known: rounds may start

	clock    uint64 // the highest Lamport timestamp seen or made
	state    state
	ts       uint64                         // the current request's timestamp
	awaiting map[actors.NodeName]bool       // members whose reply the current request needs
	deferred map[actors.NodeName]deferredRq // requests answered when this node leaves
	current  *waiter                        // the local Enter of the current round
	queue    []*waiter                      // local Enters behind it

	entries, requestsSent, repliesSent uint64
}

// waiter is a local Enter: its Ticket and the handle on its answer.
type waiter struct {
	ticket *Ticket
	reply  actors.Reply[Grant]
}

// answer answers the Enter; an Enter answered already (replaced, or its
// incarnation ended) is left alone.
func (w *waiter) answer(ctx *actors.Context, g Grant, err error) {
	if w.reply.Answered() {
		return
	}
	var ferr error
	if err != nil {
		ferr = w.reply.Fail(err)
	} else {
		ferr = w.reply.Send(g)
	}
	if ferr != nil {
		ctx.Log().Warn().Err(ferr).Msg("an Enter was not answered")
	}
}

// deferredRq is a request this node answers when it leaves the section.
type deferredRq struct{ ts, epoch uint64 }

func (r *ricart) Name() actors.ProtocolName { return r.cfg.Name }

func (r *ricart) Init(ctx *actors.Context) error {
	if err := r.cfg.Validate(); err != nil {
		return err
	}
	r.self = ctx.Node()
	r.epoch = max(uint64(ctx.Now().UnixNano()), 1)
	r.members, r.gone = map[actors.NodeName]bool{}, map[actors.NodeName]bool{}
	r.epochs, r.goneEpoch, r.gens = map[actors.NodeName]uint64{}, map[actors.NodeName]uint64{}, map[actors.NodeName]uint64{}
	r.awaiting, r.deferred = map[actors.NodeName]bool{}, map[actors.NodeName]deferredRq{}

	actors.OnMessage(ctx, r.onRequest)
	actors.OnMessage(ctx, r.onReply)
	actors.OnMessage(ctx, r.onHello)
	actors.OnRequestDeferred(ctx, r.onEnter)
	actors.OnRequest(ctx, r.onRelease)
	actors.OnTell(ctx, r.onWithdraw)
	actors.OnRequest(ctx, r.onStatus)

	if len(r.cfg.Members) > 0 {
		for _, m := range r.cfg.Members {
			if m != r.self {
				r.members[m] = true
			}
		}
		// Membership events, if any protocol publishes them, still tell
		// of failures and joins.
		membership.OnEvent(ctx, r.onMemberEvent)
		r.becomeReady(ctx)
		return nil
	}
	err := membership.Watch(ctx, func(ctx *actors.Context, ch membership.Change) error {
		if !ch.Initial() {
			return r.onMemberEvent(ctx, ch.Event)
		}
		v := ch.View
		r.generation = v.Self.Generation
		for _, m := range v.Members {
			switch {
			case m.Name == r.self:
			case m.State == membership.Alive || m.State == membership.Suspect:
				r.members[m.Name] = true
				r.gens[m.Name] = max(r.gens[m.Name], m.Generation)
				delete(r.gone, m.Name)
			default:
				delete(r.members, m.Name)
				r.gone[m.Name] = true
			}
		}
		r.becomeReady(ctx)
		return nil
	})
	if err != nil {
		return fmt.Errorf("mutex: with no Config.Members the protocol follows the membership protocol, which does not run on node %s (membership.Attach): %w", r.self, err)
	}
	return nil
}

// onMemberEvent follows joins, failures and leaves.
func (r *ricart) onMemberEvent(ctx *actors.Context, ev membership.Event) error {
	switch ev := ev.(type) {
	case *membership.MemberJoined:
		r.gens[ev.Member.Name] = max(r.gens[ev.Member.Name], ev.Member.Generation)
		r.join(ctx, ev.Member.Name)
	case *membership.MemberFailed:
		r.left(ctx, ev.Member, "failed")
	case *membership.MemberLeft:
		r.left(ctx, ev.Member, "left")
	}
	return nil
}

// becomeReady says hello to every member (a member that waits for a reply
// from an earlier incarnation of this node asks again) and starts the
// first round.
func (r *ricart) becomeReady(ctx *actors.Context) {
	r.ready = true
	for _, m := range slices.Sorted(maps.Keys(r.members)) {
		r.send(ctx, m, &pb.MutexHello{Epoch: r.epoch, Generation: r.generation})
	}
	r.start(ctx)
}

// send sends reliably. A send that fails at once (an unknown node, a full
// window to a silent peer) is logged: the member stays awaited until
// membership reports it failed or joined again (which resends).
func (r *ricart) send(ctx *actors.Context, to actors.NodeName, m proto.Message) bool {
	if err := ctx.SendReliable(to, m); err != nil {
		ctx.Log().Warn().Err(err).Str("to", string(to)).Msg("mutex message not sent; waiting for membership news of the member")
		return false
	}
	return true
}

// before reports whether request (ts1, n1) goes before (ts2, n2).
func before(ts1 uint64, n1 actors.NodeName, ts2 uint64, n2 actors.NodeName) bool {
	return ts1 < ts2 || (ts1 == ts2 && n1 < n2)
}

// start begins a round for the next local Enter, if the section is free
// here.
func (r *ricart) start(ctx *actors.Context) {
	if !r.ready || r.state != idle || len(r.queue) == 0 {
		return
	}
	r.current = r.queue[0]
	r.queue[0] = nil
	r.queue = r.queue[1:]
	r.clock++
	r.ts = r.clock
	r.state = wanted
	clear(r.awaiting)
	for _, m := range slices.Sorted(maps.Keys(r.members)) {
		r.awaiting[m] = true
		r.ask(ctx, m)
	}
	r.maybeEnter(ctx)
}

// ask sends the current request to one member.
func (r *ricart) ask(ctx *actors.Context, to actors.NodeName) {
	if r.send(ctx, to, &pb.MutexRequest{Timestamp: r.ts, Epoch: r.epoch, Generation: r.generation}) {
		r.requestsSent++
	}
}

func (r *ricart) reply(ctx *actors.Context, to actors.NodeName, rq deferredRq) {
	if r.send(ctx, to, &pb.MutexReply{Timestamp: rq.ts, Epoch: rq.epoch, Clock: r.clock}) {
		r.repliesSent++
	}
}

// maybeEnter enters the section when no reply is missing.
func (r *ricart) maybeEnter(ctx *actors.Context) {
	if r.state != wanted || len(r.awaiting) > 0 {
		return
	}
	r.state = held
	r.entries++
	g := Grant{Node: r.self, Timestamp: r.ts}
	ctx.Log().Debug().Uint64("timestamp", r.ts).Msg("entered the critical section")
	ctx.Notify(&Entered{Grant: g})
	r.current.answer(ctx, g, nil)
}

// leave ends the current round, entered or not: every deferred request is
// answered and the next local Enter starts.
func (r *ricart) leave(ctx *actors.Context) {
	if r.state == held {
		g := Grant{Node: r.self, Timestamp: r.ts}
		ctx.Log().Debug().Uint64("timestamp", r.ts).Int("deferred", len(r.deferred)).Msg("left the critical section")
		ctx.Notify(&Exited{Grant: g})
	}
	r.state, r.ts, r.current = idle, 0, nil
	clear(r.awaiting)
	for _, m := range slices.Sorted(maps.Keys(r.deferred)) {
		r.reply(ctx, m, r.deferred[m])
	}
	clear(r.deferred)
	r.start(ctx)
}

// heard records the incarnation and membership generation of a message
// from `from` and reports whether that incarnation is later than the one
// declared gone: a node that is alive again.
func (r *ricart) heard(from actors.NodeName, epoch, generation uint64) (reborn bool) {
	r.epochs[from] = max(r.epochs[from], epoch)
	r.gens[from] = max(r.gens[from], generation)
	return r.gone[from] && epoch > r.goneEpoch[from]
}

func (r *ricart) onRequest(ctx *actors.Context, from actors.NodeName, m *pb.MutexRequest) error {
	r.clock = max(r.clock, m.Timestamp)
	if reborn := r.heard(from, m.Epoch, m.Generation); reborn || (!r.members[from] && !r.gone[from]) {
		r.join(ctx, from) // it asks, so it is a member
	}
	rq := deferredRq{ts: m.Timestamp, epoch: m.Epoch}
	if r.state == held || (r.state == wanted && before(r.ts, r.self, m.Timestamp, from)) {
		r.deferred[from] = rq
		return nil
	}
	r.reply(ctx, from, rq)
	return nil
}

func (r *ricart) onReply(ctx *actors.Context, from actors.NodeName, m *pb.MutexReply) error {
	r.clock = max(r.clock, m.Clock)
	if r.state != wanted || m.Timestamp != r.ts || m.Epoch != r.epoch || !r.awaiting[from] {
		return nil // for an earlier request or incarnation, or a member no longer awaited
	}
	delete(r.awaiting, from)
	r.maybeEnter(ctx)
	return nil
}

// onHello: a new incarnation of `from` forgot what it deferred and what it
// asked: its old request is void, and the current request goes to it again
// if its reply is still missing.
func (r *ricart) onHello(ctx *actors.Context, from actors.NodeName, m *pb.MutexHello) error {
	delete(r.deferred, from)
	reborn := r.heard(from, m.Epoch, m.Generation)
	switch {
	case reborn || (!r.members[from] && !r.gone[from]):
		r.join(ctx, from)
	case r.state == wanted && r.members[from]:
		// Asked again even when its reply is in: that reply came from an
		// earlier incarnation (a hello is the first message of each), which
		// the new one forgot, and whose Lamport clock, which had passed
		// this request's timestamp, starts again at zero. Counting it let
		// the new incarnation ask with a smaller timestamp, be answered
		// here, and both enter (found by the simulation).
		r.awaiting[from] = true
		r.ask(ctx, from)
	}
	return nil
}

// join makes name a member; a request that is out goes to it too.
func (r *ricart) join(ctx *actors.Context, name actors.NodeName) {
	if name == r.self {
		return
	}
	delete(r.gone, name)
	if r.members[name] {
		if r.state == wanted && r.awaiting[name] {
			r.ask(ctx, name) // it may have restarted, or the first send failed
		}
		return
	}
	r.members[name] = true
	ctx.Log().Debug().Str("member", string(name)).Msg("member added")
	if r.state == wanted {
		r.awaiting[name] = true
		r.ask(ctx, name)
	}
}

// stale reports whether a failure or leave is an earlier incarnation's
// than one that already spoke (see gens).
func (r *ricart) stale(ctx *actors.Context, m membership.Member) bool {
	if m.Generation == 0 || m.Generation >= r.gens[m.Name] {
		return false
	}
	ctx.Log().Debug().Str("member", string(m.Name)).Uint64("generation", m.Generation).Uint64("known", r.gens[m.Name]).
		Msg("ignoring the failure of an earlier incarnation")
	return true
}

// left stops waiting for a member that failed or left, unless the news is
// about an earlier incarnation than one that already spoke (stale).
func (r *ricart) left(ctx *actors.Context, m membership.Member, how string) {
	name := m.Name
	if name == r.self || r.stale(ctx, m) {
		return
	}
	r.gone[name] = true
	r.goneEpoch[name] = r.epochs[name]
	if !r.members[name] {
		return
	}
	delete(r.members, name)
	// Its deferred request stays: answered on leaving, as any other. The
	// failure may be an earlier incarnation's, reported after its
	// successor asked (the simulation found a request lost that way, its
	// node waiting for good); a reply to a dead node costs one message,
	// and a later incarnation ignores it (epochs).
	waited := r.awaiting[name]
	delete(r.awaiting, name)
	ctx.Log().Debug().Str("member", string(name)).Str("how", how).Bool("was-awaited", waited).Msg("member removed")
	r.maybeEnter(ctx)
}

func (r *ricart) onEnter(ctx *actors.Context, e Enter, reply actors.Reply[Grant]) error {
	if e.Ticket != nil {
		if cur := r.current; cur != nil && cur.ticket == e.Ticket {
			if r.state == held {
				// Its requester timed out before the grant reached it, and
				// asks again.
				return reply.Send(Grant{Node: r.self, Timestamp: r.ts})
			}
			r.replace(ctx, cur, reply)
			return nil
		}
		for _, w := range r.queue {
			if w.ticket == e.Ticket {
				r.replace(ctx, w, reply)
				return nil
			}
		}
	}
	r.queue = append(r.queue, &waiter{ticket: e.Ticket, reply: reply})
	r.start(ctx)
	return nil
}

// replace has a waiting Enter answered through reply instead.
func (r *ricart) replace(ctx *actors.Context, w *waiter, reply actors.Reply[Grant]) {
	w.answer(ctx, Grant{}, fmt.Errorf("%w: replaced by a later Enter with the same Ticket", ErrWithdrawn))
	w.reply = reply
}

func (r *ricart) onRelease(ctx *actors.Context, rel Release) (Grant, error) {
	if r.state != held || rel.Grant != (Grant{Node: r.self, Timestamp: r.ts}) {
		cur := "nobody holds it here"
		if r.state == held {
			cur = fmt.Sprintf("it is held by the grant at timestamp %d", r.ts)
		}
		return Grant{}, fmt.Errorf("%w: release of %s at timestamp %d on node %s, but %s", ErrNotHolder, rel.Grant.Node, rel.Grant.Timestamp, r.self, cur)
	}
	r.leave(ctx)
	return rel.Grant, nil
}

func (r *ricart) onWithdraw(ctx *actors.Context, w *Withdraw) error {
	if w.Ticket == nil {
		return nil
	}
	if i := slices.IndexFunc(r.queue, func(q *waiter) bool { return q.ticket == w.Ticket }); i >= 0 {
		q := r.queue[i]
		r.queue = slices.Delete(r.queue, i, i+1)
		q.answer(ctx, Grant{}, fmt.Errorf("%w: before its round began", ErrWithdrawn))
		return nil
	}
	cur := r.current
	if cur == nil || cur.ticket != w.Ticket {
		return nil // answered and released already, or never seen
	}
	if r.state == wanted {
		// Not in the section: answering what was deferred is all a
		// withdrawal needs; replies to the abandoned request are ignored.
		r.leave(ctx)
		cur.answer(ctx, Grant{}, fmt.Errorf("%w: while waiting for replies", ErrWithdrawn))
		return nil
	}
	r.leave(ctx) // granted meanwhile: the requester gave up, so release
	return nil
}

func (r *ricart) onStatus(*actors.Context, StatusRequest) (Status, error) {
	return Status{
		Node:         r.self,
		State:        r.state.String(),
		Clock:        r.clock,
		Timestamp:    r.ts,
		Members:      slices.Sorted(maps.Keys(r.members)),
		Awaiting:     slices.Sorted(maps.Keys(r.awaiting)),
		Deferred:     slices.Sorted(maps.Keys(r.deferred)),
		Queued:       len(r.queue),
		Entries:      r.entries,
		RequestsSent: r.requestsSent,
		RepliesSent:  r.repliesSent,
	}, nil
}

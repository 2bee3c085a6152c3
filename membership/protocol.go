package membership

import (
	"fmt"
	"sync"

	"github.com/troupe-dev/troupe/actors"
)

// Name is the name of the protocol Attach starts on a node.
const Name actors.ProtocolName = "membership"

// ViewRequest asks the membership protocol for the current View. The
// view it answers is the one its notifications have told so far: a
// protocol that subscribed to them before asking hears the events already
// in the view before the answer, and only later ones after it. [Watch]
// does both in one call; prefer it to asking yourself:
//
//	actors.Request(ctx, membership.Name, membership.ViewRequest{}, 0, onView)
type ViewRequest struct{ actors.Returns[View] }

// relay carries an event from the membership's goroutine into the
// protocol's mailbox; it is unexported so that only the membership
// protocol subscribes to it.
type relay struct{ ev Event }

// told is the view as of the last event the protocol published. It is
// shared by the protocol's incarnations and touched only on the
// protocol's goroutine (Attach sets it before the protocol starts).
type told struct{ view View }

type protocol struct {
	m    *Membership
	told *told
}

func (p *protocol) Name() actors.ProtocolName { return Name }

func (p *protocol) Init(ctx *actors.Context) error {
	actors.OnTell(ctx, func(ctx *actors.Context, r *relay) error {
		p.told.view = p.told.view.with(r.ev.Of())
		ctx.Notify(r.ev)
		return nil
	})
	actors.OnRequest(ctx, func(*actors.Context, ViewRequest) (View, error) {
		// This node's own row is not an event: take SWIM's latest.
		return p.told.view.with(p.m.View().Self), nil
	})
	return nil
}

// Attach starts the membership protocol on node. From then on every
// membership event is published on the node, in order, as a notification
// of its own type (*MemberJoined, *MemberSuspect, *MemberFailed,
// *MemberLeft, *MemberUpdated), which any protocol receives by registering
// actors.OnNotification for it (or all of them, with the view first, by
// [Watch]); and a ViewRequest gets the View as of the last event published.
// Attach also gives the node its datagram and gossip channels
// (actors.Datagram, actors.Gossip: [Membership.Packets]). The returned
// function stops the relay and takes the channels away (the protocol stops
// with the node).
func Attach(node *actors.Node, m *Membership) (detach func(), err error) {
	if node.Name() != m.Name() {
		return nil, fmt.Errorf("membership: attaching %s's membership to node %s; they must have the same name", m.Name(), node.Name())
	}
	// The protocol starts from the view at subscription time, and the
	// events after it are relayed once it runs (a relay told before would
	// be lost): the view it answers and the events it publishes agree.
	var mu sync.Mutex
	mu.Lock()
	defer mu.Unlock()
	view, cancel := m.Subscribe(func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		// Fails only once the node is stopping; the events are moot then.
		_ = node.Tell(Name, &relay{ev: ev})
	})
	t := &told{view: view}
	if err := node.Start(func() actors.Protocol { return &protocol{m: m, told: t} }); err != nil {
		cancel()
		return nil, err
	}
	// The node's datagram and gossip channels go through this membership.
	node.SetPackets(m.Packets())
	return func() {
		node.SetPackets(nil)
		cancel()
	}, nil
}

// Peers is a directory of node addresses, such as transport/remote's
// Network.
type Peers interface {
	SetPeer(name, addr string) error
	RemovePeer(name string)
}

// FeedPeers keeps p in step with the view: live members with a remote
// address are set, failed and departed ones removed (sends to them then
// fail at once as sends to an unknown node). This node's own entry is left
// alone. The remembered members (Config.Memory) that the view does not
// hold yet are set first, so that a restarted node reaches its peers (raft
// its voters) before gossip has found them; the view's news replaces them
// as it comes. It returns a function that stops the feed.
func (m *Membership) FeedPeers(p Peers) (cancel func()) {
	apply := func(mem Member) {
		if mem.Name == m.self.Name || mem.Address == "" {
			return
		}
		switch mem.State {
		case Alive, Suspect:
			if err := p.SetPeer(string(mem.Name), mem.Address); err != nil {
				m.log.Warn().Err(err).Str("member", string(mem.Name)).Msg("member's remote address is unusable")
			}
		case Failed, Left:
			p.RemovePeer(string(mem.Name))
		}
	}
	// The view is applied before any later event.
	var mu sync.Mutex
	mu.Lock()
	defer mu.Unlock()
	view, cancel := m.Subscribe(func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		apply(ev.Of())
	})
	for _, r := range m.remembered {
		if _, known := view.Get(r.Name); !known {
			apply(Member{Name: r.Name, Address: r.Address, Gossip: r.Gossip, State: Alive})
		}
	}
	for _, mem := range view.Members {
		apply(mem)
	}
	return cancel
}

package membership

import (
	"fmt"
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"

	"github.com/troupe-dev/troupe/actors"
)

// swimTable is memberlist's own table of members, read under its lock.
//
// memberlist tells its delegates of joins, metadata updates and deaths,
// but not of the other SWIM transitions: a suspicion learnt from another
// node's gossip, and a refutation (the member's alive message with a
// higher incarnation, which clears a suspicion) change its table and call
// nobody. A Membership therefore reads the table — every probe interval,
// and for the one member an alive message is about just before memberlist
// applies it (NotifyAlive, under memberlist's lock) — and publishes what
// changed. The table and its lock are unexported fields of
// memberlist.Memberlist; inspect finds them by name and type, and checks
// that a member's entry has the layout of swimState, so that an upgrade of
// memberlist that changes either fails New with an error instead of
// reading garbage.
type swimTable struct {
	lock  *sync.RWMutex
	nodes *[]*swimState // memberlist's nodes slice, every known member
}

// inspect finds memberlist's member table in ml.
func inspect(ml *memberlist.Memberlist) (swimTable, error) {
	v := reflect.ValueOf(ml).Elem()
	lock := v.FieldByName("nodeLock")
	if !lock.IsValid() || lock.Type() != reflect.TypeFor[sync.RWMutex]() {
		return swimTable{}, fmt.Errorf("membership: this memberlist has no nodeLock sync.RWMutex; the SWIM events need memberlist v0.7's layout (see swim.go)")
	}
	nodes := v.FieldByName("nodes")
	if !nodes.IsValid() || nodes.Kind() != reflect.Slice || nodes.Type().Elem().Kind() != reflect.Pointer {
		return swimTable{}, fmt.Errorf("membership: this memberlist has no nodes []*nodeState; the SWIM events need memberlist v0.7's layout (see swim.go)")
	}
	if err := sameLayout(nodes.Type().Elem().Elem(), reflect.TypeFor[swimState]()); err != nil {
		return swimTable{}, err
	}
	return swimTable{
		lock:  (*sync.RWMutex)(unsafe.Pointer(lock.UnsafeAddr())),
		nodes: (*[]*swimState)(unsafe.Pointer(nodes.UnsafeAddr())),
	}, nil
}

// sameLayout reports whether memberlist's nodeState (got) has the fields
// of swimState (want), with the same names, types and offsets.
func sameLayout(got, want reflect.Type) error {
	if got.Kind() != reflect.Struct || got.Size() != want.Size() || got.NumField() != want.NumField() {
		return fmt.Errorf("membership: memberlist's %s (%d bytes) is not laid out as swimState (%d bytes); the SWIM events need memberlist v0.7's layout (see swim.go)", got, got.Size(), want.Size())
	}
	for i := range want.NumField() {
		g, w := got.Field(i), want.Field(i)
		if g.Name != w.Name || g.Type != w.Type || g.Offset != w.Offset {
			return fmt.Errorf("membership: memberlist's %s field %d is %s %s at offset %d; swimState expects %s %s at %d (see swim.go)",
				got, i, g.Name, g.Type, g.Offset, w.Name, w.Type, w.Offset)
		}
	}
	return nil
}

// sweep compares memberlist's table with the view and publishes what
// changed. It holds memberlist's lock (read) while it publishes, so that
// memberlist's own callbacks, which run under that lock, are published in
// the order memberlist made the changes.
func (m *Membership) sweep() {
	m.table.lock.RLock()
	defer m.table.lock.RUnlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range *m.table.nodes {
		m.syncLocked(s)
	}
}

// syncLocked publishes the SWIM transitions of one member that memberlist
// made without telling a delegate. Callers hold memberlist's lock (read or
// write) and mu.
func (m *Membership) syncLocked(s *swimState) {
	name := actors.NodeName(s.Name)
	if name == m.self.Name {
		if s.Incarnation > m.self.Incarnation {
			m.self.Incarnation = s.Incarnation
			if mem, ok := m.view[name]; ok {
				mem.Incarnation = s.Incarnation
				m.view[name] = mem
			}
		}
		return
	}
	m.swim[name] = s
	prev, known := m.view[name]
	if !known || (prev.State != Alive && prev.State != Suspect) {
		// A member memberlist holds alive again after failing or leaving
		// is told by NotifyJoin, which publishes it.
		return
	}
	mem := prev.clone()
	mem.Incarnation = max(s.Incarnation, prev.Incarnation)
	refuted := s.Incarnation > prev.Incarnation
	switch s.State {
	case memberlist.StateSuspect:
		if refuted && prev.State == Suspect {
			// Refuted and suspected again since the last look.
			up := mem.clone()
			up.State = Alive
			m.refutations.Add(1)
			m.publishLocked(&MemberUpdated{Member: up, Refuted: true})
		}
		if prev.State == Alive || refuted {
			mem.State = Suspect
			// This node's own probe raised it if memberlist logged so
			// just before (logBridge); else another node's gossip did.
			at, own := m.ownSuspect[name]
			own = own && time.Since(at) < 2*m.probeInterval+time.Second
			delete(m.ownSuspect, name)
			if own {
				m.suspicions.Add(1)
			} else {
				m.gossipSuspicions.Add(1)
			}
			m.publishLocked(&MemberSuspect{Member: mem, ByGossip: !own})
		}
	case memberlist.StateAlive:
		if !refuted && prev.State == Alive {
			return
		}
		delete(m.ownSuspect, name)
		if refuted {
			mem.State = Alive
			m.refutations.Add(1)
			m.publishLocked(&MemberUpdated{Member: mem, Refuted: true})
		} else {
			// Suspect in the view, alive at the same incarnation in
			// memberlist: not a transition memberlist makes; follow it.
			mem.State = Alive
			m.publishLocked(&MemberUpdated{Member: mem})
		}
	case memberlist.StateDead:
		// deadNode tells NotifyLeave under the same lock: not reached
		// unless memberlist changes; publish the confirmation anyway.
		mem.State = Failed
		m.publishLocked(&MemberFailed{Member: mem})
	case memberlist.StateLeft:
		mem.State = Left
		m.publishLocked(&MemberLeft{Member: mem})
	}
}

// syncMember publishes the transitions of one member; the caller holds
// memberlist's lock (a delegate callback).
func (m *Membership) syncMember(name actors.NodeName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.swim[name]; s != nil {
		m.syncLocked(s)
	}
}

// ownSuspicion records that this node's probe of name failed and
// memberlist is about to suspect it (the log line memberlist writes just
// before), and asks for a sweep, which publishes the suspicion once
// memberlist has applied it.
func (m *Membership) ownSuspicion(name actors.NodeName) {
	m.mu.Lock()
	m.ownSuspect[name] = time.Now()
	m.mu.Unlock()
	select {
	case m.sweepNow <- struct{}{}:
	default:
	}
}

// sweeper sweeps every probe interval (every 5 gossip intervals if that
// is sooner), and when asked, until Shutdown.
func (m *Membership) sweeper() {
	defer m.wg.Done()
	tick := time.NewTicker(min(m.probeInterval, 5*m.gossipInterval))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-m.sweepNow:
		case <-m.done:
			return
		}
		m.sweep()
	}
}

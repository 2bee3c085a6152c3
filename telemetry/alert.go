package telemetry

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/troupe-dev/troupe/actors"
	pb "github.com/troupe-dev/troupe/messages"
)

// Severity grades an alert.
type Severity int

// Severities, in increasing order.
const (
	Info     Severity = 1 // worth knowing: a new leader, a member that left
	Warning  Severity = 2 // may need a look: a suspicion, a restart, a failed job, a filling disk
	Critical Severity = 3 // something is down: a failed member, a stopped protocol, no quorum, no leader
)

func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warning:
		return "warning"
	case Critical:
		return "critical"
	}
	return fmt.Sprintf("Severity(%d)", int(s))
}

// MarshalText writes the severity's name (JSON: "warning").
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity's name.
func (s *Severity) UnmarshalText(b []byte) error {
	for _, v := range []Severity{Info, Warning, Critical} {
		if string(b) == v.String() {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("telemetry: severity %q; valid: info, warning, critical", b)
}

// Kind says what an alert is about.
type Kind string

// The kinds of alerts the telemetry protocol raises. A kind that [Kind.Lasts]
// is a condition with a start and an end (the alert is active, then
// resolved); the others are events, which never end.
const (
	MemberSuspect     Kind = "member_suspect"     // this node's probe of a member failed (warning); ends when the member answers again or fails
	MemberFailed      Kind = "member_failed"      // a member was declared dead (critical); ends when it is alive again (or left)
	MemberLeft        Kind = "member_left"        // a member left gracefully (info); an event
	LeaderChanged     Kind = "leader_changed"     // a new leader was elected (info); an event
	LeaderLost        Kind = "leader_lost"        // the elector knew no leader for Config.LeaderGrace (critical); ends on an election
	QuorumLost        Kind = "quorum_lost"        // this node's raft group reaches fewer than a majority of its voters (critical); ends when it reaches a majority
	ProtocolRestarted Kind = "protocol_restarted" // a protocol failed and was restarted (warning); an event
	ProtocolStopped   Kind = "protocol_stopped"   // a protocol failed too often and stopped (critical); ends when the node runs it again
	JobFailed         Kind = "job_failed"         // a job ended in failure at its contact (warning); an event
	DiskAlmostFull    Kind = "disk_almost_full"   // the node's disk is over Config.DiskFull (warning); ends 2 points below
)

// Lasts reports whether alerts of kind k are conditions that end (and are
// then resolved), rather than events.
func (k Kind) Lasts() bool {
	switch k {
	case MemberSuspect, MemberFailed, LeaderLost, QuorumLost, ProtocolStopped, DiskAlmostFull:
		return true
	}
	return false
}

// AlertState is where an alert is in its lifecycle.
type AlertState string

// The states of an alert.
const (
	Active   AlertState = "active"   // the condition holds
	Resolved AlertState = "resolved" // the condition ended at Alert.Ended
	Event    AlertState = "event"    // an event: it has no end
)

// Alert is something an operator should see. The node that notices it
// raises it and sends it to every live member; every node keeps it in a
// bounded history. A condition (a failed member, a lost quorum, no leader)
// is active from Started until the node that raised it sees it end, stamps
// Ended and sends the alert again: every node then holds the same Started
// and Ended, as the raising node's clock read them. Several nodes that
// notice the same fact (a member failed) raise alerts of the same Key;
// every node merges them into one alert, the earliest raised, with every
// node that reported it.
type Alert struct {
	ID       string          `json:"id"`      // raising node, incarnation and sequence: unique
	Key      string          `json:"key"`     // the fact: kind and subject, e.g. member_failed/node-1, quorum_lost/node-2, leader_lost
	Kind     Kind            `json:"kind"`    //
	Subject  string          `json:"subject"` // the member, node, protocol or job
	Severity Severity        `json:"severity"`
	Message  string          `json:"message"`   // one line for people
	State    AlertState      `json:"state"`     // active, resolved or event
	RaisedBy actors.NodeName `json:"raised_by"` // the node that raised it
	Started  time.Time       `json:"started"`   // when RaisedBy raised it (its clock)
	// Ended is when the condition ended, as ResolvedBy's clock read it:
	// RaisedBy's, unless RaisedBy failed or left before it saw the end.
	// Zero (absent in JSON) while active, and for events.
	Ended      time.Time         `json:"ended,omitzero"`
	ResolvedBy actors.NodeName   `json:"resolved_by,omitempty"`
	Origin     actors.NodeName   `json:"origin"`    // RaisedBy, under its first name
	Time       time.Time         `json:"time"`      // Started, under its first name
	Received   time.Time         `json:"received"`  // when this node first had it (its clock)
	Reporters  []actors.NodeName `json:"reporters"` // every node that reported the fact, in the order heard
}

// Active reports whether the alert's condition still holds.
func (a *Alert) Active() bool { return a.Kind.Lasts() && a.Ended.IsZero() }

func (a *Alert) String() string {
	s := fmt.Sprintf("%s %s %s: %s (from %s)", a.Started.Format(time.TimeOnly), a.Severity, a.Kind, a.Message, joinNames(a.Reporters))
	if !a.Ended.IsZero() {
		s += " resolved " + a.Ended.Format(time.TimeOnly)
	}
	return s
}

func (a *Alert) toPB() *pb.TelemetryAlert {
	m := &pb.TelemetryAlert{Id: a.ID, Key: a.Key, Origin: string(a.RaisedBy), TimeUnixNano: a.Started.UnixNano(),
		Severity: uint32(a.Severity), Kind: string(a.Kind), Subject: a.Subject, Message: a.Message,
		ResolvedBy: string(a.ResolvedBy), Reporters: make([]string, len(a.Reporters))}
	for i, r := range a.Reporters {
		m.Reporters[i] = string(r)
	}
	if !a.Ended.IsZero() {
		m.EndedUnixNano = a.Ended.UnixNano()
	}
	return m
}

// maxReporters bounds the reporters an alert from the network may name.
const maxReporters = 1024

// alertFromPB checks an alert from the network and converts it.
func alertFromPB(m *pb.TelemetryAlert, received time.Time) (*Alert, error) {
	switch {
	case m.GetId() == "" || m.GetKey() == "" || m.GetOrigin() == "":
		return nil, fmt.Errorf("alert without id, key or origin: %q, %q, %q", m.GetId(), m.GetKey(), m.GetOrigin())
	case m.GetSeverity() < uint32(Info) || m.GetSeverity() > uint32(Critical):
		return nil, fmt.Errorf("alert %s has severity %d; valid: 1 to 3", m.GetId(), m.GetSeverity())
	case (m.GetEndedUnixNano() != 0) != (m.GetResolvedBy() != ""):
		return nil, fmt.Errorf("alert %s has an end (%d) and a resolver (%q) without the other", m.GetId(), m.GetEndedUnixNano(), m.GetResolvedBy())
	case m.GetEndedUnixNano() != 0 && (!Kind(m.GetKind()).Lasts() || m.GetEndedUnixNano() < m.GetTimeUnixNano()):
		return nil, fmt.Errorf("alert %s of kind %s ends at %d, started at %d: only a condition ends, after it started", m.GetId(), m.GetKind(), m.GetEndedUnixNano(), m.GetTimeUnixNano())
	case len(m.GetReporters()) > maxReporters:
		return nil, fmt.Errorf("alert %s names %d reporters; at most %d", m.GetId(), len(m.GetReporters()), maxReporters)
	}
	a := &Alert{ID: m.Id, Key: m.Key, RaisedBy: actors.NodeName(m.Origin), Started: time.Unix(0, m.TimeUnixNano), Received: received,
		Severity: Severity(m.Severity), Kind: Kind(m.Kind), Subject: m.Subject, Message: m.Message,
		ResolvedBy: actors.NodeName(m.ResolvedBy), Reporters: []actors.NodeName{actors.NodeName(m.Origin)}}
	if m.EndedUnixNano != 0 {
		a.Ended = time.Unix(0, m.EndedUnixNano)
	}
	for _, s := range m.Reporters {
		if r := actors.NodeName(s); r != "" && !slices.Contains(a.Reporters, r) {
			a.Reporters = append(a.Reporters, r)
		}
	}
	return a, nil
}

// history is a node's bounded alert history. It keeps every copy of an
// alert it heard of (one per raise, by ID, with the best resolution heard)
// and derives the alerts from them, the same way on every node whatever
// the order the copies came in: an event is one alert per key; a
// condition one alert per key and episode, an episode being the copies
// that started before it ended. Past max alerts the oldest that is not
// active is forgotten.
type history struct {
	max    int
	copies map[string]*Alert
}

func newHistory(max int) *history { return &history{max: max, copies: map[string]*Alert{}} }

// add records a copy (it becomes the history's: the caller must not change
// it afterwards) and reports whether the history changed.
func (h *history) add(a *Alert) bool {
	old, ok := h.copies[a.ID]
	if !ok {
		h.copies[a.ID] = a
		h.trim()
		return true
	}
	changed := false
	for _, r := range a.Reporters {
		if !slices.Contains(old.Reporters, r) {
			old.Reporters = append(old.Reporters, r)
			changed = true
		}
	}
	if !a.Ended.IsZero() && (old.Ended.IsZero() || better(a, old)) {
		old.Ended, old.ResolvedBy = a.Ended, a.ResolvedBy
		changed = true
	}
	return changed
}

// better reports whether a's resolution of one copy beats b's: the raising
// node's first, then the earliest.
func better(a, b *Alert) bool {
	if ra, rb := a.ResolvedBy == a.RaisedBy, b.ResolvedBy == b.RaisedBy; ra != rb {
		return ra
	}
	return cmp.Or(a.Ended.Compare(b.Ended), cmp.Compare(a.ResolvedBy, b.ResolvedBy)) < 0
}

// first orders copies: the earliest raised first.
func first(a, b *Alert) int {
	return cmp.Or(a.Started.Compare(b.Started), cmp.Compare(a.RaisedBy, b.RaisedBy), cmp.Compare(a.ID, b.ID))
}

// episode is an alert derived from its copies.
type episode struct {
	Alert
	copies []*Alert
}

// alerts derives the alerts from the copies, in no particular order.
func (h *history) alerts() []*episode {
	byKey := map[string][]*Alert{}
	for _, c := range h.copies {
		byKey[c.Key] = append(byKey[c.Key], c)
	}
	var out []*episode
	for _, cs := range byKey {
		slices.SortFunc(cs, first)
		var cur *episode
		for _, c := range cs {
			if cur != nil && (!c.Kind.Lasts() || cur.Ended.IsZero() || c.Started.Before(cur.Ended)) {
				cur.join(c)
				continue
			}
			cur = &episode{Alert: *c, copies: []*Alert{c}}
			cur.Reporters = slices.Clone(c.Reporters)
			cur.Ended, cur.ResolvedBy = time.Time{}, ""
			cur.settleEnd()
			out = append(out, cur)
		}
	}
	return out
}

func (e *episode) join(c *Alert) {
	e.copies = append(e.copies, c)
	for _, r := range c.Reporters {
		if !slices.Contains(e.Reporters, r) {
			e.Reporters = append(e.Reporters, r)
		}
	}
	if c.Received.Before(e.Received) {
		e.Received = c.Received
	}
	e.settleEnd()
}

// settleEnd takes the episode's end from its copies: the raising node's
// resolution, else the earliest.
func (e *episode) settleEnd() {
	if !e.Kind.Lasts() {
		return
	}
	e.Ended, e.ResolvedBy = time.Time{}, ""
	for _, c := range e.copies {
		if c.Ended.IsZero() {
			continue
		}
		mine, best := c.ResolvedBy == e.RaisedBy, e.ResolvedBy == e.RaisedBy
		switch {
		case e.Ended.IsZero(), mine && !best,
			mine == best && cmp.Or(c.Ended.Compare(e.Ended), cmp.Compare(c.ResolvedBy, e.ResolvedBy)) < 0:
			e.Ended, e.ResolvedBy = c.Ended, c.ResolvedBy
		}
	}
}

// trim forgets the oldest alerts past max, resolved ones and events
// before active ones.
func (h *history) trim() {
	all := h.alerts()
	if len(all) <= h.max {
		return
	}
	slices.SortFunc(all, order)
	for _, e := range all[h.max:] {
		for _, c := range e.copies {
			delete(h.copies, c.ID)
		}
	}
}

// order puts active alerts first, then the others by start, newest first.
func order(a, b *episode) int {
	if a.Active() != b.Active() {
		if a.Active() {
			return -1
		}
		return 1
	}
	return first(&b.Alert, &a.Alert)
}

// report counts self among the reporters of the alert of key, if one is
// active (an event: if one is kept), and reports whether there is one.
func (h *history) report(key string, self actors.NodeName) bool {
	for _, e := range h.alerts() {
		if e.Key != key || !e.Active() && e.Kind.Lasts() {
			continue
		}
		if c := h.copies[e.ID]; !slices.Contains(e.Reporters, self) {
			c.Reporters = append(c.Reporters, self)
		}
		return true
	}
	return false
}

// active returns the active alert of key, if any.
func (h *history) active(key string) *episode {
	for _, e := range h.alerts() {
		if e.Key == key && e.Active() {
			return e
		}
	}
	return nil
}

// find returns the alert of key that holds the copy id.
func (h *history) find(key, id string) *episode {
	for _, e := range h.alerts() {
		if e.Key == key && slices.ContainsFunc(e.copies, func(c *Alert) bool { return c.ID == id }) {
			return e
		}
	}
	return nil
}

// newest copies up to n alerts (n <= 0: all): the active ones first, then
// by start, newest first.
func (h *history) newest(n int) []Alert {
	all := h.alerts()
	slices.SortFunc(all, order)
	if n <= 0 || n > len(all) {
		n = len(all)
	}
	out := make([]Alert, 0, n)
	for _, e := range all[:n] {
		out = append(out, e.view())
	}
	return out
}

// view is a copy of a for readers, with its state and the fields under
// their first names filled in.
func (a *Alert) view() Alert {
	c := *a
	c.Reporters = slices.Clone(a.Reporters)
	c.Origin, c.Time = c.RaisedBy, c.Started
	switch {
	case !c.Kind.Lasts():
		c.State = Event
	case c.Ended.IsZero():
		c.State = Active
	default:
		c.State = Resolved
	}
	return c
}

// joinNames lists node names for people.
func joinNames(names []actors.NodeName) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

package telemetry

import (
	"fmt"
	"slices"
	"strings"
	"time"

	pb "github.com/troupe-dev/troupe/messages"
)

// Severity grades an alert.
type Severity int

// Severities, in increasing order.
const (
	Info     Severity = 1 // worth knowing: a new leader, a member that left
	Warning  Severity = 2 // may need a look: a suspicion, a restart, a failed job, a filling disk
	Critical Severity = 3 // something is down: a failed member, a stopped protocol
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

// The kinds of alerts the telemetry protocol raises.
const (
	MemberSuspect     Kind = "member_suspect"     // this node's probe of a member failed (warning)
	MemberFailed      Kind = "member_failed"      // a member was declared dead (critical)
	MemberLeft        Kind = "member_left"        // a member left gracefully (info)
	LeaderChanged     Kind = "leader_changed"     // a new leader was elected (info)
	ProtocolRestarted Kind = "protocol_restarted" // a protocol failed and was restarted (warning)
	ProtocolStopped   Kind = "protocol_stopped"   // a protocol failed too often and stopped (critical)
	JobFailed         Kind = "job_failed"         // a job ended in failure at its contact (warning)
	DiskAlmostFull    Kind = "disk_almost_full"   // the node's disk is over Config.DiskFull (warning)
)

// Alert is something an operator should see. The node that notices it
// raises it and sends it to every live member; every node keeps one per
// Key in a bounded history, so that a fact several nodes notice (a member
// failed, a leader was elected) is one alert, with every node that
// reported it.
type Alert struct {
	ID        string    `json:"id"`        // origin, incarnation and sequence: unique
	Key       string    `json:"key"`       // the fact: kind, subject and what tells it apart
	Origin    string    `json:"origin"`    // the first node that reported it here
	Time      time.Time `json:"time"`      // when the origin raised it (its clock)
	Received  time.Time `json:"received"`  // when this node first had it (its clock)
	Severity  Severity  `json:"severity"`  //
	Kind      Kind      `json:"kind"`      //
	Subject   string    `json:"subject"`   // the member, protocol or job
	Message   string    `json:"message"`   // one line for people
	Reporters []string  `json:"reporters"` // every node that reported the fact, in the order heard
}

func (a *Alert) String() string {
	return fmt.Sprintf("%s %s %s: %s (from %s)", a.Time.Format(time.TimeOnly), a.Severity, a.Kind, a.Message, strings.Join(a.Reporters, ", "))
}

func (a *Alert) toPB() *pb.TelemetryAlert {
	return &pb.TelemetryAlert{Id: a.ID, Key: a.Key, Origin: a.Origin, TimeUnixNano: a.Time.UnixNano(),
		Severity: uint32(a.Severity), Kind: string(a.Kind), Subject: a.Subject, Message: a.Message}
}

// alertFromPB checks an alert from the network and converts it.
func alertFromPB(m *pb.TelemetryAlert, received time.Time) (*Alert, error) {
	switch {
	case m.GetId() == "" || m.GetKey() == "" || m.GetOrigin() == "":
		return nil, fmt.Errorf("alert without id, key or origin: %q, %q, %q", m.GetId(), m.GetKey(), m.GetOrigin())
	case m.GetSeverity() < uint32(Info) || m.GetSeverity() > uint32(Critical):
		return nil, fmt.Errorf("alert %s has severity %d; valid: 1 to 3", m.GetId(), m.GetSeverity())
	}
	return &Alert{ID: m.Id, Key: m.Key, Origin: m.Origin, Time: time.Unix(0, m.TimeUnixNano), Received: received,
		Severity: Severity(m.Severity), Kind: Kind(m.Kind), Subject: m.Subject, Message: m.Message,
		Reporters: []string{m.Origin}}, nil
}

// history is a node's bounded alert history: one alert per key, oldest
// first; past max alerts the oldest is forgotten.
type history struct {
	max   int
	list  []*Alert
	byKey map[string]*Alert
}

func newHistory(max int) *history { return &history{max: max, byKey: map[string]*Alert{}} }

// add records a, or the reporter of a fact already recorded. It reports
// whether a was new.
func (h *history) add(a *Alert) bool {
	if old, ok := h.byKey[a.Key]; ok {
		if !slices.Contains(old.Reporters, a.Origin) {
			old.Reporters = append(old.Reporters, a.Origin)
		}
		return false
	}
	h.list = append(h.list, a)
	h.byKey[a.Key] = a
	if len(h.list) > h.max {
		delete(h.byKey, h.list[0].Key)
		h.list[0] = nil
		h.list = h.list[1:]
	}
	return true
}

// newest copies up to n alerts, newest first (n <= 0: all).
func (h *history) newest(n int) []Alert {
	if n <= 0 || n > len(h.list) {
		n = len(h.list)
	}
	out := make([]Alert, 0, n)
	for i := len(h.list) - 1; i >= 0 && len(out) < n; i-- {
		a := *h.list[i]
		a.Reporters = slices.Clone(a.Reporters)
		out = append(out, a)
	}
	return out
}

package telemetry

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/membership"
)

// Snapshot is the cluster as one node sees it: what the dashboard and
// `node status` show.
type Snapshot struct {
	Node       actors.NodeName `json:"node"` // the node that answered
	Time       time.Time       `json:"time"`
	IntervalMS int             `json:"interval_ms"` // the status interval
	Leader     actors.NodeName `json:"leader"`      // "" while there is none
	Term       uint64          `json:"term"`
	// Aggregator is the member whose table of statuses the answer shows
	// (the leader; this node when it aggregates).
	Aggregator actors.NodeName `json:"aggregator"`
	Members    []Member        `json:"members"` // every member the node's SWIM view holds, in name order
	Jobs       []Job           `json:"jobs"`    // the jobs the live members are contact of: pending and running first
	Alerts     []Alert         `json:"alerts"`  // active first, then by start, newest first
	Rates      []Rate          `json:"rates"`   // per protocol, in name order
	// Raft sums up the raft group as this node sees it; nil when it runs
	// none. Each member's own view is in its Status.Raft.
	Raft *RaftSummary `json:"raft,omitempty"`
}

// RaftSummary is the raft group as one node sees it.
type RaftSummary struct {
	Voters   []actors.NodeName `json:"voters"`
	Learners []actors.NodeName `json:"learners"`
	Leader   actors.NodeName   `json:"leader"` // "" while none is known
	Term     uint64            `json:"term"`
	// Quorum is "healthy" while this node reaches a majority of the
	// voters (itself and the live members of its SWIM view), "lost"
	// when it does not (a quorum_lost alert is active).
	Quorum    string            `json:"quorum"`
	Reachable []actors.NodeName `json:"reachable"` // the voters this node reaches
	Majority  int               `json:"majority"`
}

// Member is one member in the node's view, with its latest status.
type Member struct {
	Name  actors.NodeName `json:"name"`
	State string          `json:"state"` // alive, suspect, failed or left, in this node's SWIM view
	// Stale: no status from the member for Config.StaleAfter (the member
	// may be alive but unreachable from this node).
	Stale    bool      `json:"stale"`
	LastSeen time.Time `json:"last_seen,omitzero"` // when its latest status arrived
	Status   *Status   `json:"status,omitempty"`   // nil until one arrives
}

// Rate is the messages one protocol handled per second, summed over the
// live members, one point per status interval of the answering node,
// oldest first.
type Rate struct {
	Protocol actors.ProtocolName `json:"protocol"`
	Points   []float64           `json:"points"`
}

func (p *telemetry) snapshot(ctx *actors.Context, r SnapshotRequest) Snapshot {
	now := ctx.Now()
	s := Snapshot{Node: p.self, Time: now, IntervalMS: int(p.cfg.StatusInterval / time.Millisecond),
		Leader: p.leader, Term: p.term, Aggregator: p.aggregator(), Members: []Member{}, Jobs: []Job{}, Rates: []Rate{}}
	names := slices.SortedFunc(maps.Keys(p.members), naturalCompare)
	for _, name := range names {
		m := Member{Name: name, State: p.members[name].String()}
		if rec := p.latest(name); rec != nil {
			m.Status = statusFromPB(rec.msg, rec.size)
			m.LastSeen = rec.at
			m.Stale = now.Sub(rec.at) > p.cfg.StaleAfter
			if p.isLive(name) {
				s.Jobs = append(s.Jobs, m.Status.Jobs...)
			}
		} else {
			m.Stale = p.members[name] == membership.Alive || p.members[name] == membership.Suspect
		}
		s.Members = append(s.Members, m)
	}
	slices.SortStableFunc(s.Jobs, func(a, b Job) int {
		if a.Over() != b.Over() {
			if a.Over() {
				return 1
			}
			return -1
		}
		return b.Submitted.Compare(a.Submitted)
	})
	s.Alerts = p.alerts.newest(cmp.Or(r.Alerts, 50))
	rates := p.chartPoints()
	for _, name := range slices.Sorted(maps.Keys(rates)) {
		s.Rates = append(s.Rates, Rate{Protocol: name, Points: slices.Clone(rates[name])})
	}
	if p.raft != nil {
		r := &RaftSummary{Voters: nodeNames(p.raft.Voters), Learners: nodeNames(p.raft.Learners), Leader: actors.NodeName(p.raft.Leader),
			Term: p.raft.Term, Quorum: "healthy", Reachable: []actors.NodeName{}, Majority: len(p.raft.Voters)/2 + 1}
		for _, v := range r.Voters {
			if v == p.self || p.isLive(v) {
				r.Reachable = append(r.Reachable, v)
			}
		}
		if p.quorumLost {
			r.Quorum = "lost"
		}
		s.Raft = r
	}
	return s
}

// naturalCompare orders names as people expect: runs of digits compare as
// numbers, so "node-9" comes before "node-10".
func naturalCompare[S ~string](x, y S) int {
	a, b := string(x), string(y)
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := trimZeros(a[:da]), trimZeros(b[:db])
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			if c := cmp.Compare(da, db); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

// bytesString prints a byte count with a binary unit: "1.5 GiB".
func bytesString(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

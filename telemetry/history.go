package telemetry

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
	pb "github.com/troupe-dev/troupe/messages"
)

// maxSeriesProtocols caps the protocols charted per member: a status
// naming more has the extra ones left out of the history (not of the
// snapshot).
const maxSeriesProtocols = 32

// HistoryRequest asks the telemetry protocol for the figures of the
// members over time, as this node received their statuses (one point per
// Config.HistoryStep at most, the last Config.HistoryPoints kept per
// member). The reply is a [History]; ErrBadRequest for a window out of
// range, ErrUnknownNode for a node that is not a member.
type HistoryRequest struct {
	actors.Returns[History]
	// Window is how far back to go: Config.HistoryStep to
	// HistoryStep × HistoryPoints; 0 means all that is kept.
	Window time.Duration
	// Node restricts the answer to one member; "" for every one.
	Node actors.NodeName
	// Since leaves out the points at or before this time, in
	// milliseconds since the Unix epoch (the last T of an earlier answer):
	// a chart that has them asks for the new ones only. 0 for all.
	Since int64
}

// History is the members' figures over time as one node kept them.
type History struct {
	Node        actors.NodeName `json:"node"` // the node that answered
	Time        time.Time       `json:"time"`
	StepMS      int64           `json:"step_ms"`       // at most one point per step and member
	WindowMS    int64           `json:"window_ms"`     // the window asked for
	MaxWindowMS int64           `json:"max_window_ms"` // what the node keeps
	Series      []Series        `json:"series"`        // per member, in name order
}

// Series is one member's figures over time. Every slice has one value per
// time in T; a member that stops sending statuses (failed, unreachable)
// has no points from then on: its series ends, and charts leave a gap.
type Series struct {
	Node  actors.NodeName `json:"node"`
	State string          `json:"state"` // in the answering node's SWIM view, now
	// T is each point's time, in milliseconds since the Unix epoch, on
	// the answering node's clock (when the status arrived).
	T            []int64          `json:"t"`
	CPUPercent   []float64        `json:"cpu_percent"` // % of one core
	RSSBytes     []float64        `json:"rss_bytes"`
	HeapBytes    []float64        `json:"heap_bytes"`
	Goroutines   []float64        `json:"goroutines"`
	MailboxDepth []float64        `json:"mailbox_depth"`  // summed over its protocols
	MsgsPerSec   []float64        `json:"msgs_per_sec"`   // messages handled, timer firings left out
	TimersPerSec []float64        `json:"timers_per_sec"` // timer firings handled
	BytesIn      []float64        `json:"bytes_in_per_sec"`
	BytesOut     []float64        `json:"bytes_out_per_sec"`
	Protocols    []ProtocolSeries `json:"protocols"` // in name order
}

// ProtocolSeries is one protocol's figures on one member; a value is 0
// at the points before the protocol first showed.
type ProtocolSeries struct {
	Name         actors.ProtocolName `json:"name"`
	MsgsPerSec   []float64           `json:"msgs_per_sec"`
	TimersPerSec []float64           `json:"timers_per_sec"`
	BytesIn      []float64           `json:"bytes_in_per_sec"`
	BytesOut     []float64           `json:"bytes_out_per_sec"`
	MailboxDepth []float64           `json:"mailbox_depth"`
}

// The figures of a point, by index.
const (
	fCPU = iota
	fRSS
	fHeap
	fGoroutines
	fMailbox
	fMsgs
	fTimers
	fBytesIn
	fBytesOut
	nFigures
)

// The figures of a protocol at a point, by index.
const (
	pMsgs = iota
	pTimers
	pBytesIn
	pBytesOut
	pMailbox
	nProtoFigures
)

type point struct {
	at     int64 // unix ms
	fig    [nFigures]float64
	protos [][nProtoFigures]float64 // by column of series.names
}

// series is a ring of one member's points: at most cap points, one per
// step; memory is bounded by cap × (nFigures + nProtoFigures ×
// maxSeriesProtocols) values.
type series struct {
	points []point
	next   int // where the next point goes once the ring is full
	names  []actors.ProtocolName
}

func (s *series) add(p point, capacity int) {
	if len(s.points) < capacity {
		s.points = append(s.points, p)
		return
	}
	s.points[s.next] = p
	s.next = (s.next + 1) % capacity
}

func (s *series) last() (point, bool) {
	if len(s.points) == 0 {
		return point{}, false
	}
	return s.points[(s.next+len(s.points)-1)%len(s.points)], true
}

// ordered returns the points oldest first.
func (s *series) ordered() []point {
	return append(slices.Clone(s.points[s.next:]), s.points[:s.next]...)
}

// record adds a member's status to its series, unless its last point is
// younger than a step.
func (p *telemetry) record(name actors.NodeName, m *pb.TelemetryStatus, now time.Time) {
	s := p.charts[name]
	if s == nil {
		s = &series{}
		p.charts[name] = s
	}
	at := now.UnixMilli()
	// A point per step; a little early is fine (statuses are not exactly
	// periodic), so a step equal to the status interval keeps them all.
	if last, ok := s.last(); ok && at-last.at < p.cfg.HistoryStep.Milliseconds()*9/10 {
		return
	}
	pt := point{at: at}
	pt.fig[fCPU], pt.fig[fRSS], pt.fig[fHeap] = round2(m.CpuPercent), float64(m.RssBytes), float64(m.HeapBytes)
	pt.fig[fGoroutines] = float64(m.Goroutines)
	pt.protos = make([][nProtoFigures]float64, len(s.names))
	for _, ps := range m.Protocols {
		name := actors.ProtocolName(ps.Name)
		col := slices.Index(s.names, name)
		if col < 0 {
			if len(s.names) >= maxSeriesProtocols {
				continue
			}
			s.names = append(s.names, name)
			pt.protos = append(pt.protos, [nProtoFigures]float64{})
			col = len(s.names) - 1
		}
		f := [nProtoFigures]float64{round2(ps.MsgsInPerSec), round2(ps.TimersPerSec), round2(ps.BytesInPerSec), round2(ps.BytesOutPerSec),
			float64(ps.MailboxDepth)}
		pt.protos[col] = f
		pt.fig[fMailbox] += f[pMailbox]
		pt.fig[fMsgs] += f[pMsgs]
		pt.fig[fTimers] += f[pTimers]
		pt.fig[fBytesIn] += f[pBytesIn]
		pt.fig[fBytesOut] += f[pBytesOut]
	}
	s.add(pt, p.cfg.HistoryPoints)
}

// round2 rounds a rate to two decimals: charts need no more, and the
// history's JSON is a third shorter.
func round2(x float64) float64 { return math.Round(x*100) / 100 }

func (p *telemetry) maxWindow() time.Duration {
	return p.cfg.HistoryStep * time.Duration(p.cfg.HistoryPoints)
}

// checkWindow checks a history window against the step and what a node
// keeps.
func checkWindow(w, step, max time.Duration) error {
	if w != 0 && (w < step || w > max) {
		return fmt.Errorf("%w: window %v; use %v to %v", ErrBadRequest, w, step, max)
	}
	return nil
}

func (p *telemetry) history(ctx *actors.Context, r HistoryRequest) (History, error) {
	if err := checkWindow(r.Window, p.cfg.HistoryStep, p.maxWindow()); err != nil {
		return History{}, err
	}
	if r.Node != "" && !p.known(r.Node) {
		return History{}, fmt.Errorf("%w: %q is not a member in %s's view", ErrUnknownNode, r.Node, p.self)
	}
	now := ctx.Now()
	window := r.Window
	if window == 0 {
		window = p.maxWindow()
	}
	h := History{Node: p.self, Time: now, StepMS: p.cfg.HistoryStep.Milliseconds(), WindowMS: window.Milliseconds(),
		MaxWindowMS: p.maxWindow().Milliseconds(), Series: []Series{}}
	from := max(now.Add(-window).UnixMilli(), r.Since+1)
	for _, name := range slices.SortedFunc(maps.Keys(p.members), naturalCompare) {
		if r.Node != "" && name != r.Node {
			continue
		}
		out := Series{Node: name, State: p.members[name].String(), T: []int64{}, Protocols: []ProtocolSeries{}}
		figs := []*[]float64{&out.CPUPercent, &out.RSSBytes, &out.HeapBytes, &out.Goroutines, &out.MailboxDepth,
			&out.MsgsPerSec, &out.TimersPerSec, &out.BytesIn, &out.BytesOut}
		for _, f := range figs {
			*f = []float64{}
		}
		s := p.charts[name]
		var pts []point
		if s != nil {
			pts = s.ordered()
			i, _ := slices.BinarySearchFunc(pts, from, func(pt point, t int64) int { return int(min(max(pt.at-t, -1), 1)) })
			pts = pts[i:]
		}
		for _, pt := range pts {
			out.T = append(out.T, pt.at)
			for i, f := range figs {
				*f = append(*f, pt.fig[i])
			}
		}
		if s != nil {
			for col, pname := range s.names {
				ps := ProtocolSeries{Name: pname, MsgsPerSec: []float64{}, TimersPerSec: []float64{}, BytesIn: []float64{},
					BytesOut: []float64{}, MailboxDepth: []float64{}}
				cols := []*[]float64{&ps.MsgsPerSec, &ps.TimersPerSec, &ps.BytesIn, &ps.BytesOut, &ps.MailboxDepth}
				for _, pt := range pts {
					var f [nProtoFigures]float64
					if col < len(pt.protos) {
						f = pt.protos[col]
					}
					for i, c := range cols {
						*c = append(*c, f[i])
					}
				}
				out.Protocols = append(out.Protocols, ps)
			}
			slices.SortFunc(out.Protocols, func(a, b ProtocolSeries) int { return naturalCompare(a.Name, b.Name) })
		}
		h.Series = append(h.Series, out)
	}
	return h, nil
}

// raftToPB is the raft protocol's status as this node's status carries it.
func raftToPB(st consensus.Status) *pb.TelemetryRaft {
	r := &pb.TelemetryRaft{State: st.State, Leader: string(st.Leader), Term: st.Term, Commit: st.Commit, Applied: st.Applied,
		Voters: wireNames(st.Voters), Learners: wireNames(st.Learners), Reachable: wireNames(st.Reachable), Reason: st.Reason,
		Keys: uint64(st.Keys)}
	for _, f := range st.Followers {
		r.Followers = append(r.Followers, &pb.TelemetryRaftFollower{Node: string(f.Node), Match: f.Match, Next: f.Next, State: f.State, Active: f.Active})
	}
	return r
}

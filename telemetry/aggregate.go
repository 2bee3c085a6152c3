package telemetry

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	pb "github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// Aggregation: every node sends its status to one aggregator, the leader
// its elector names (the highest live member of its view while it knows
// none), which keeps every member's latest status, their figures over time
// and the rate charts. A node asked for a snapshot or a history fetches the
// aggregator's (a snapshot's table is reused for half a status interval),
// so a cluster nobody watches costs one status per node per interval.

// maxTableBytes bounds a TelemetryTable (or a TelemetrySeries): room is
// left in the network's envelope limit for the envelope itself.
const maxTableBytes = transport.MaxEnvelopeSize - 64<<10

// maxTableRates bounds the protocols of the rate charts taken from a table.
const maxTableRates = 64

type tableFetch struct {
	id      uint64
	to      actors.NodeName
	timer   actors.TimerID
	waiting []snapshotWait
}

type snapshotWait struct {
	r     SnapshotRequest
	reply actors.Reply[Snapshot]
}

type seriesWait struct {
	to    actors.NodeName
	reply actors.Reply[History]
	timer actors.TimerID
}

type (
	fetchTimeout  struct{ id uint64 }
	seriesTimeout struct{ id uint64 }
)

// aggregator is the node statuses go to: the leader, while it is live in
// this node's view, else the highest live member in natural order (this
// node included), so that every node picks the same one when the views
// agree.
func (p *telemetry) aggregator() actors.NodeName {
	if p.leader != "" && p.isLive(p.leader) {
		return p.leader
	}
	best := p.self
	for name := range p.members {
		if p.isLive(name) && naturalCompare(name, best) > 0 {
			best = name
		}
	}
	return best
}

// route sends this node's latest status to a new aggregator at once, so
// that a new aggregator's table fills within a round trip, not an
// interval.
func (p *telemetry) route(ctx *actors.Context) {
	agg := p.aggregator()
	if agg == p.sentTo || p.last == nil {
		return
	}
	p.sentTo = agg
	if agg != p.self {
		p.send(ctx, agg, p.last)
	}
}

// fetchTimeout is how long a node waits for the aggregator's table or
// history before it answers with what it holds (or fails).
func (p *telemetry) fetchWait() time.Duration { return max(p.cfg.StatusInterval, 250*time.Millisecond) }

// onSnapshot answers at once on the aggregator, or with a table fetched
// less than half a status interval ago; otherwise it fetches the
// aggregator's table first (one fetch for every request that comes
// meanwhile).
func (p *telemetry) onSnapshot(ctx *actors.Context, r SnapshotRequest, reply actors.Reply[Snapshot]) error {
	agg := p.aggregator()
	if agg == p.self || agg == p.tableFrom && ctx.Now().Sub(p.tableAt) < p.cfg.StatusInterval/2 {
		return reply.Send(p.snapshot(ctx, r))
	}
	if p.fetch == nil {
		p.nextFetch++
		if err := ctx.Send(agg, &pb.TelemetryTableRequest{Id: p.nextFetch}); err != nil {
			ctx.Log().Debug().Err(err).Str("to", string(agg)).Msg("table not asked for")
			return reply.Send(p.snapshot(ctx, r))
		}
		p.fetch = &tableFetch{id: p.nextFetch, to: agg, timer: ctx.After(p.fetchWait(), fetchTimeout{id: p.nextFetch})}
	}
	p.fetch.waiting = append(p.fetch.waiting, snapshotWait{r: r, reply: reply})
	return nil
}

// answerSnapshots answers the snapshot requests waiting for a table (ctx
// nil: the protocol stops; they fail).
func (p *telemetry) answerSnapshots(ctx *actors.Context) {
	f := p.fetch
	if f == nil {
		return
	}
	p.fetch = nil
	for _, w := range f.waiting {
		if ctx == nil {
			_ = w.reply.Fail(fmt.Errorf("%w: the telemetry protocol of %s restarted or stopped", ErrTimeout, p.self))
			continue
		}
		_ = w.reply.Send(p.snapshot(ctx, w.r))
	}
}

func (p *telemetry) onFetchTimeout(ctx *actors.Context, t fetchTimeout) error {
	if p.fetch == nil || p.fetch.id != t.id {
		return nil
	}
	ctx.Log().Debug().Str("aggregator", string(p.fetch.to)).Msg("no table from the aggregator: answering with the statuses held")
	p.answerSnapshots(ctx)
	return nil
}

// onTableRequest answers with the statuses this node received itself:
// every member's on the aggregator. A table over maxTableBytes leaves the
// last members (in name order) out.
func (p *telemetry) onTableRequest(ctx *actors.Context, from actors.NodeName, m *pb.TelemetryTableRequest) error {
	now := ctx.Now()
	t := &pb.TelemetryTable{Id: m.Id}
	size := 0
	for _, name := range slices.SortedFunc(maps.Keys(p.statuses), naturalCompare) {
		rec := p.statuses[name]
		e := &pb.TelemetryTableEntry{Status: rec.msg, AgeMs: now.Sub(rec.at).Milliseconds(), Size: uint32(rec.size)}
		if size += proto.Size(e) + 8; size > maxTableBytes/2 {
			ctx.Log().Warn().Int("members", len(p.statuses)).Int("sent", len(t.Entries)).Msg("telemetry table cut to fit one message")
			break
		}
		t.Entries = append(t.Entries, e)
	}
	if p.aggregator() == p.self {
		for _, name := range slices.Sorted(maps.Keys(p.rates)) {
			t.Rates = append(t.Rates, &pb.TelemetryRate{Protocol: string(name), Points: p.rates[name]})
		}
	}
	p.send(ctx, from, t)
	return nil
}

// onTable takes the aggregator's table: statuses that are not this node's
// own, with the time they arrived there.
func (p *telemetry) onTable(ctx *actors.Context, from actors.NodeName, m *pb.TelemetryTable) error {
	if p.fetch == nil || p.fetch.id != m.Id || p.fetch.to != from {
		return nil // late, after the timeout
	}
	ctx.Cancel(p.fetch.timer)
	now := ctx.Now()
	if m.Error == "" {
		table := map[actors.NodeName]*received{}
		for _, e := range m.Entries {
			st := e.GetStatus()
			if st == nil || st.Node == "" || len(st.Node) > 256 || e.AgeMs < 0 || actors.NodeName(st.Node) == p.self {
				continue
			}
			table[actors.NodeName(st.Node)] = &received{msg: st, at: now.Add(-time.Duration(e.AgeMs) * time.Millisecond), size: int(e.Size)}
		}
		rates := map[actors.ProtocolName][]float64{}
		for _, r := range m.Rates {
			if len(rates) >= maxTableRates || r.Protocol == "" {
				break
			}
			pts := r.Points
			if len(pts) > p.cfg.RatePoints {
				pts = pts[len(pts)-p.cfg.RatePoints:]
			}
			rates[actors.ProtocolName(r.Protocol)] = pts
		}
		p.table, p.tableRates, p.tableFrom, p.tableAt = table, rates, from, now
	}
	p.answerSnapshots(ctx)
	return nil
}

// latest is the newest status known of a member: received here, or in the
// aggregator's table.
func (p *telemetry) latest(name actors.NodeName) *received {
	own, agg := p.statuses[name], p.table[name]
	switch {
	case own == nil:
		return agg
	case agg == nil || !agg.at.After(own.at):
		return own
	}
	return agg
}

// chartPoints are the rate charts: this node's own when it aggregates,
// else those of the table fetched last.
func (p *telemetry) chartPoints() map[actors.ProtocolName][]float64 {
	if p.aggregator() == p.self || p.tableAt.IsZero() {
		return p.rates
	}
	return p.tableRates
}

// onHistoryQuery answers a HistoryRequest from this node's series on the
// aggregator, else from the aggregator's.
func (p *telemetry) onHistoryQuery(ctx *actors.Context, r HistoryRequest, reply actors.Reply[History]) error {
	agg := p.aggregator()
	if agg == p.self {
		h, err := p.history(ctx, r)
		if err != nil {
			return err
		}
		return reply.Send(h)
	}
	if err := checkWindow(r.Window, p.cfg.HistoryStep, p.maxWindow()); err != nil {
		return err
	}
	if r.Node != "" && !p.known(r.Node) {
		return fmt.Errorf("%w: %q is not a member in %s's view", ErrUnknownNode, r.Node, p.self)
	}
	p.nextFetch++
	id := p.nextFetch
	if err := ctx.Send(agg, &pb.TelemetrySeriesRequest{Id: id, WindowMs: r.Window.Milliseconds(), Node: string(r.Node), SinceMs: r.Since}); err != nil {
		return fmt.Errorf("%w: %s cannot reach the aggregator %s: %v", ErrTimeout, p.self, agg, err)
	}
	p.series[id] = &seriesWait{to: agg, reply: reply, timer: ctx.After(p.cfg.LogsTimeout, seriesTimeout{id: id})}
	return nil
}

func (p *telemetry) onSeriesRequest(ctx *actors.Context, from actors.NodeName, m *pb.TelemetrySeriesRequest) error {
	rep := &pb.TelemetrySeries{Id: m.Id}
	h, err := p.history(ctx, HistoryRequest{Window: time.Duration(m.WindowMs) * time.Millisecond, Node: actors.NodeName(m.Node), Since: m.SinceMs})
	if err == nil {
		rep.Json, err = json.Marshal(h)
	}
	if err == nil && len(rep.Json) > maxTableBytes {
		err = fmt.Errorf("%w: the history of %d members over %v is %d bytes, over the %d-byte limit of one message: ask for one node (node=NAME) or a shorter window",
			ErrBadRequest, len(h.Series), time.Duration(h.WindowMS)*time.Millisecond, len(rep.Json), maxTableBytes)
	}
	if err != nil {
		rep.Json, rep.Error = nil, err.Error()
	}
	p.send(ctx, from, rep)
	return nil
}

func (p *telemetry) onSeries(ctx *actors.Context, from actors.NodeName, m *pb.TelemetrySeries) error {
	w, ok := p.series[m.Id]
	if !ok || w.to != from {
		return nil // late, after the timeout
	}
	delete(p.series, m.Id)
	ctx.Cancel(w.timer)
	if m.Error != "" {
		_ = w.reply.Fail(fmt.Errorf("history from the aggregator %s: %w", from, remoteError(m.Error)))
		return nil
	}
	var h History
	if err := json.Unmarshal(m.Json, &h); err != nil {
		_ = w.reply.Fail(fmt.Errorf("history from the aggregator %s does not parse: %w", from, err))
		return nil
	}
	_ = w.reply.Send(h)
	return nil
}

func (p *telemetry) onSeriesTimeout(ctx *actors.Context, t seriesTimeout) error {
	w, ok := p.series[t.id]
	if !ok {
		return nil
	}
	delete(p.series, t.id)
	_ = w.reply.Fail(fmt.Errorf("%w: the aggregator %s did not send the history within %v", ErrTimeout, w.to, p.cfg.LogsTimeout))
	return nil
}

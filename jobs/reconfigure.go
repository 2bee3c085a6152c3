package jobs

import (
	"context"

	"github.com/troupe-dev/troupe/actors"
)

// Reconfigure changes the jobs protocol's configuration on a running node
// without a restart ([actors.Node.Reconfigure]). cfg is a whole Config,
// checked as New checks it; an invalid one is refused and the protocol
// keeps the configuration it had. Every field takes effect at once:
//
//   - Slots and Prefetch: more slots start waiting parts now and grant the
//     leader the new credit; fewer slots let the running parts finish and
//     withhold credit until the worker is within its new capacity.
//   - Runtimes and their Limits, Disabled: scripts loaded from then on use
//     the new runtimes; parts already running finish under the old ones.
//   - the submission limits, PartsPerMember, Backup, Retain, Settle: from
//     the next job, part or scheduling pass; Tick re-arms the timer.
func Reconfigure(ctx context.Context, node *actors.Node, cfg Config) error {
	return node.Reconfigure(ctx, Name, cfg)
}

func (p *protocol) onReconfigure(ctx *actors.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	before := p.capacity()
	if cfg.Tick != p.cfg.Tick && p.tick != 0 {
		ctx.Cancel(p.tick)
		p.tick = ctx.Every(cfg.Tick, tick{})
	}
	p.rts = runtimesOf(cfg)
	p.pool.use(p.rts)
	p.cfg = cfg
	if delta := p.capacity() - before; delta > 0 {
		p.grant(ctx, delta)
	} else if delta < 0 {
		p.work.debt -= delta
	}
	p.pump()
	ctx.Log().Info().Int("slots", cfg.Slots).Int("prefetch", cfg.Prefetch).Msg("jobs reconfigured")
	return nil
}

func runtimesOf(cfg Config) map[string]Runtime {
	rts := make(map[string]Runtime, len(cfg.Runtimes))
	for _, rt := range cfg.Runtimes {
		rts[rt.Name()] = rt
	}
	return rts
}

// DrainRequest makes a node's worker stop: it cancels the parts it runs
// and holds, tells the leader it runs none and has no credit (the leader
// queues those parts again, first, and assigns them to other workers at
// once), and refuses later assignments. A node sends it to its own jobs
// protocol before it leaves the cluster, so that its parts do not wait for
// the leader to notice the departure:
//
//	actors.Call(ctx, node, jobs.Name, jobs.DrainRequest{})
//
// Draining lasts until the protocol restarts. The node's other roles go
// on: as contact it still collects results and answers, as leader it still
// schedules (on the other workers).
type DrainRequest struct{ actors.Returns[Drained] }

// Drained is the reply to a [DrainRequest].
type Drained struct {
	HandedBack int             // parts stopped here and handed back to the leader
	Leader     actors.NodeName // the leader they went back to ("" while none)
}

func (p *protocol) drain(ctx *actors.Context, _ DrainRequest) (Drained, error) {
	w := &p.work
	p.draining = true
	n := len(w.tasks)
	p.stopTasks(ctx, func(*task) bool { return true })
	p.stats.HandedBack += int64(n)
	if p.leader != "" {
		p.resetWorker(ctx) // runs nothing, no credit: draining
	}
	ctx.Log().Info().Int("parts", n).Str("leader", string(p.leader)).Msg("draining: parts handed back to the leader")
	return Drained{HandedBack: n, Leader: p.leader}, nil
}

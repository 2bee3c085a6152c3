package jobs

import "github.com/troupe-dev/troupe/actors"

// tick is the protocol's periodic timer (Config.Tick). It runs only while
// there is work that needs it (needTick): an idle node's jobs protocol
// fires no timer and sends nothing. wake arms it where such work appears;
// onTick disarms it when the work is gone.
type tick struct{}

// needTick reports whether something waits for the tick: messages in the
// outbox to send again, jobs the leader schedules (backup copies, the
// settle deadline), a contact's jobs waiting for a leader (the raft
// group's reason, Status.Waiting), or part progress to pass on.
func (p *protocol) needTick() bool {
	return len(p.outbox) > 0 || len(p.sched.jobs) > 0 || p.progressPending() ||
		(p.leader == "" && p.waitingJobs())
}

// wake arms the tick if there is work for it and it is not running. Called
// where such work appears: a message queued in the outbox (send), a job
// at the leader (onSubmit), a contact's job without a leader (submit,
// onLeaderChanged), part progress held back (onTaskProgress).
func (p *protocol) wake(ctx *actors.Context) {
	if p.tick == 0 && p.needTick() {
		p.tick = ctx.Every(p.cfg.Tick, tick{})
		p.stats.Wakes++
	}
}

func (p *protocol) onTick(ctx *actors.Context, _ tick) error {
	if len(p.outbox) > 0 {
		p.retry(ctx)
	}
	if len(p.sched.jobs) > 0 {
		p.schedule(ctx)
	}
	p.askQuorum(ctx)
	p.flushProgress(ctx)
	if !p.needTick() {
		ctx.Cancel(p.tick)
		p.tick = 0
	}
	return nil
}

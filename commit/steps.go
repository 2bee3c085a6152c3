package commit

import "github.com/troupe-dev/troupe/actors"

// step names a point of the protocol where a test may crash the node. At a
// step, everything before it has happened (logged, sent); nothing after it
// will.
type step string

// Coordinator steps, in protocol order.
const (
	stepBegin            step = "coordinator.begin"             // transaction accepted; nothing logged or sent
	stepPending          step = "coordinator.pending"           // consensus mode: "pending" recorded in the group; no Prepare sent
	stepPrepareSentOne   step = "coordinator.prepare-sent-one"  // Prepare sent to the first participant only
	stepPrepareSent      step = "coordinator.prepare-sent"      // Prepare sent to all; no vote handled
	stepVotesIn          step = "coordinator.votes-in"          // every vote yes; decision not recorded
	stepDecided          step = "coordinator.decided"           // decision durable (log or group); not sent, client not told
	stepDecisionSentOne  step = "coordinator.decision-sent-one" // Decision sent to the first participant only
	stepDecisionSent     step = "coordinator.decision-sent"     // Decision sent to all; no ack handled
	stepAcked            step = "coordinator.acked"             // every ack in; the transaction not forgotten
	stepPrepareReceived  step = "participant.prepare-received"  // Prepare received; Resource not called
	stepPrepared         step = "participant.prepared"          // Resource said yes; vote not logged
	stepVoteLogged       step = "participant.vote-logged"       // yes logged; vote not sent
	stepVoted            step = "participant.voted"             // vote sent; in doubt
	stepDecisionReceived step = "participant.decision-received" // decision known; Resource not called
	stepApplied          step = "participant.applied"           // Resource committed or aborted; end not logged, no ack
	stepAckSent          step = "participant.ack-sent"          // end logged, ack sent
)

// at runs the test hook at a step. When the hook asks for a crash the
// protocol halts: from then on no handler does anything and no Resource
// call starts, as if the node had died there; the test then crashes the
// node for real (cluster.Crash) and restarts it from its data dir. at
// reports whether the protocol is halted: the caller returns at once.
func (p *Protocol) at(ctx *actors.Context, s step, tx string) bool {
	if p.dead {
		return true
	}
	if p.cfg.hook == nil || !p.cfg.hook(s, p.self, tx) {
		return false
	}
	p.dead = true
	if p.w != nil {
		p.w.halt()
	}
	ctx.Log().Warn().Str("step", string(s)).Str("tx", tx).Msg("fault injection: halting here, as if the node crashed")
	return true
}

package commit

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/kv"
	pb "github.com/troupe-dev/troupe/messages"
)

// part is this node's part of a transaction, from its Prepare until it
// ends.
type part struct {
	id          string
	coordinator actors.NodeName
	mode        pb.TxMode
	state       State     // Preparing or InDoubt
	started     time.Time // Prepare received (PrepareTimeout)
	since       time.Time // in doubt since
	query       *backoff  // next Query to the coordinator (and read of the group)
	applying    bool      // the decision is known and its Resource call queued
	commit      bool      // the decision, while applying
	retryAt     time.Time // a failed Commit or Abort is tried again at
	kvBusy      bool
}

func (p *Protocol) onPrepare(ctx *actors.Context, from actors.NodeName, m *pb.TxPrepare) error {
	id, ok := parseID(m.Tx)
	if !ok || id.coordinator != from {
		p.badInput(from, fmt.Sprintf("a Prepare of %q, whose id does not name its sender as coordinator", m.Tx))
		return nil
	}
	if pt := p.parts[m.Tx]; pt != nil {
		if pt.state == InDoubt {
			sendOrLog(p, ctx, from, &pb.TxVote{Tx: m.Tx, Yes: true}) // the vote was lost
		}
		return nil
	}
	if _, ok := p.ended[m.Tx]; ok {
		// An old copy: the transaction was decided long ago, and no is
		// the only vote that cannot change a decision.
		sendOrLog(p, ctx, from, &pb.TxVote{Tx: m.Tx, Reason: fmt.Sprintf("transaction %s already ended on %s", m.Tx, p.self)})
		return nil
	}
	if !slices.Contains(m.Participants, string(p.self)) || (m.Mode != pb.TxMode_TX_MODE_TEXTBOOK && m.Mode != pb.TxMode_TX_MODE_CONSENSUS) {
		p.badInput(from, fmt.Sprintf("a malformed Prepare of %s (mode %v, participants %v)", m.Tx, m.Mode, m.Participants))
		sendOrLog(p, ctx, from, &pb.TxVote{Tx: m.Tx, Reason: fmt.Sprintf("malformed Prepare: %s must be a participant and the mode textbook or consensus", p.self)})
		return nil
	}
	if g := p.gens[from]; id.gen < g {
		// A restarted coordinator never prepares its earlier transactions
		// again: this is an old copy.
		sendOrLog(p, ctx, from, &pb.TxVote{Tx: m.Tx, Reason: fmt.Sprintf("a Prepare from generation %d of %s, which has since restarted (generation %d)", id.gen, from, g)})
		return nil
	}
	p.gens[from] = id.gen
	if p.at(ctx, stepPrepareReceived, m.Tx) {
		return nil
	}
	p.parts[m.Tx] = &part{id: m.Tx, coordinator: from, mode: m.Mode, state: Preparing, started: ctx.Now()}
	p.w.push(job{kind: jobPrepare, tx: m.Tx, op: m.Op})
	return nil
}

func (p *Protocol) onResourceDone(ctx *actors.Context, r *resourceDone) error {
	if r.w != p.w {
		return nil // a call of an earlier incarnation
	}
	pt := p.parts[r.tx]
	if r.kind == jobPrepare {
		if pt == nil || pt.state != Preparing {
			return nil // aborted meanwhile; its Abort is queued behind this Prepare
		}
		if r.err != nil {
			if err := p.end(pt, false, false); err != nil {
				return err
			}
			sendOrLog(p, ctx, pt.coordinator, &pb.TxVote{Tx: pt.id, Reason: r.err.Error()})
			return nil
		}
		return p.prepared(ctx, pt)
	}
	if pt == nil || !pt.applying {
		return nil // an abort of a part that never voted yes
	}
	if r.err != nil {
		p.log.Error().Err(r.err).Str("tx", pt.id).Stringer("call", r.kind).Msg("the resource failed to apply a decision; trying again")
		pt.retryAt = ctx.Now().Add(p.cfg.RetryInterval)
		return nil
	}
	if p.at(ctx, stepApplied, pt.id) {
		return nil
	}
	if err := p.end(pt, pt.commit, true); err != nil {
		return err
	}
	sendOrLog(p, ctx, pt.coordinator, &pb.TxAck{Tx: pt.id})
	p.at(ctx, stepAckSent, pt.id)
	return nil
}

// prepared logs a yes vote and sends it: from now on only the
// coordinator's decision (or the group's) ends the part.
func (p *Protocol) prepared(ctx *actors.Context, pt *part) error {
	if p.at(ctx, stepPrepared, pt.id) {
		return nil
	}
	rec := &pb.TxRecord{State: pb.TxState_TX_STATE_PREPARED, Mode: pt.mode, Coordinator: string(pt.coordinator)}
	if err := p.db.write(change{bucketPart, pt.id, rec}); err != nil {
		return err
	}
	if p.at(ctx, stepVoteLogged, pt.id) {
		return nil
	}
	now := ctx.Now()
	pt.state, pt.since, pt.query = InDoubt, now, p.newBackoff(now)
	sendOrLog(p, ctx, pt.coordinator, &pb.TxVote{Tx: pt.id, Yes: true})
	p.at(ctx, stepVoted, pt.id)
	return nil
}

func (p *Protocol) onDecision(ctx *actors.Context, from actors.NodeName, m *pb.TxDecision) error {
	if CoordinatorOf(m.Tx) != from {
		p.badInput(from, fmt.Sprintf("a decision on %q from a node that is not its coordinator", m.Tx))
		return nil
	}
	pt := p.parts[m.Tx]
	switch {
	case pt == nil:
		// Ended, or never prepared here: nothing to apply.
		sendOrLog(p, ctx, from, &pb.TxAck{Tx: m.Tx})
	case pt.state == Preparing && m.Commit:
		p.log.Error().Str("tx", m.Tx).Msg("a commit decision for a part that has not voted; ignored")
	case pt.state == Preparing:
		// The abort overtook the Prepare's outcome (or the vote timed
		// out): abort unilaterally; the Abort runs after the Prepare.
		if err := p.abortBeforeVote(pt); err != nil {
			return err
		}
		sendOrLog(p, ctx, from, &pb.TxAck{Tx: m.Tx})
	default:
		p.apply(ctx, pt, m.Commit)
	}
	return nil
}

// apply queues the Resource call of a decision.
func (p *Protocol) apply(ctx *actors.Context, pt *part, commit bool) {
	if pt.applying || p.at(ctx, stepDecisionReceived, pt.id) {
		return
	}
	pt.applying, pt.commit = true, commit
	kind := jobAbort
	if commit {
		kind = jobCommit
	}
	p.w.push(job{kind: kind, tx: pt.id})
}

// abortBeforeVote ends a part that has not voted: its Abort is queued
// after its Prepare, and a Prepare that answers later is ignored.
func (p *Protocol) abortBeforeVote(pt *part) error {
	p.stats.UnilateralAborts++
	p.w.push(job{kind: jobAbort, tx: pt.id})
	return p.end(pt, false, false)
}

// end records that a part ended. A part that voted yes has a log record,
// which now says how it ended; the oldest ended parts beyond RetainEnded
// are forgotten.
func (p *Protocol) end(pt *part, committed, logged bool) error {
	delete(p.parts, pt.id)
	if committed {
		p.stats.PartsCommitted++
	} else {
		p.stats.PartsAborted++
	}
	p.endN++
	p.ended[pt.id] = endedPart{committed: committed, logged: logged}
	p.order = append(p.order, pt.id)
	var changes []change
	if logged {
		state := pb.TxState_TX_STATE_ABORTED
		if committed {
			state = pb.TxState_TX_STATE_COMMITTED
		}
		changes = append(changes, change{bucketPart, pt.id, &pb.TxRecord{State: state, Mode: pt.mode, Coordinator: string(pt.coordinator), Ended: p.endN}})
	}
	for len(p.order) > p.cfg.RetainEnded {
		old := p.order[0]
		p.order = p.order[1:]
		if p.ended[old].logged {
			changes = append(changes, change{bucket: bucketPart, tx: old})
		}
		delete(p.ended, old)
	}
	if len(changes) == 0 {
		return nil
	}
	return p.db.write(changes...)
}

// tickParticipant aborts a Prepare that takes too long, asks for the
// decision of parts in doubt, and retries failed Resource calls.
func (p *Protocol) tickParticipant(ctx *actors.Context, pt *part, now time.Time) error {
	switch {
	case pt.state == Preparing:
		if now.Sub(pt.started) < p.cfg.PrepareTimeout {
			return nil
		}
		if err := p.abortBeforeVote(pt); err != nil {
			return err
		}
		sendOrLog(p, ctx, pt.coordinator, &pb.TxVote{Tx: pt.id,
			Reason: fmt.Sprintf("the resource did not prepare within %v (PrepareTimeout)", p.cfg.PrepareTimeout)})
	case pt.applying:
		if !pt.retryAt.IsZero() && !now.Before(pt.retryAt) {
			pt.retryAt = time.Time{}
			pt.applying = false
			p.apply(ctx, pt, pt.commit)
		}
	case p.due(pt.query, now):
		sendOrLog(p, ctx, pt.coordinator, &pb.TxQuery{Tx: pt.id})
		if pt.mode == pb.TxMode_TX_MODE_CONSENSUS && p.raft && !pt.kvBusy {
			pt.kvBusy = true
			return p.ask(ctx, kvRead, pt.id, kv.Request{Op: kv.OpGet, Key: DecisionKey(pt.id)})
		}
	}
	return nil
}

// participantConsensus handles what the group says of a part in doubt.
func (p *Protocol) participantConsensus(ctx *actors.Context, r *kvResult) error {
	pt := p.parts[r.tx]
	if pt == nil {
		return nil
	}
	pt.kvBusy = false
	if pt.state != InDoubt || pt.applying {
		return nil
	}
	res := r.res
	if r.err != nil {
		p.log.Debug().Err(r.err).Str("tx", pt.id).Msg("reading the decision from the consensus group failed; asking again later")
		return nil
	}
	if r.op == kvAbandon && res.OK {
		p.stats.Abandoned++
		p.stats.FromConsensus++
		p.log.Info().Str("tx", pt.id).Str("coordinator", string(pt.coordinator)).Dur("in_doubt", ctx.Now().Sub(pt.since)).
			Msg("aborted an abandoned transaction in the consensus group")
		p.apply(ctx, pt, false)
		return nil
	}
	switch {
	case !res.Found:
		// The coordinator writes the key before any Prepare and deletes it
		// only once every participant acknowledged: this part is an old
		// copy of a transaction that is over, or never went anywhere.
		p.stats.FromConsensus++
		p.apply(ctx, pt, false)
	case bytes.Equal(res.Value, valCommit), bytes.Equal(res.Value, valAbort):
		p.stats.FromConsensus++
		p.apply(ctx, pt, bytes.Equal(res.Value, valCommit))
	case bytes.Equal(res.Value, valPending) && ctx.Now().Sub(pt.since) >= p.cfg.AbandonAfter:
		pt.kvBusy = true
		return p.ask(ctx, kvAbandon, pt.id, kv.Request{Op: kv.OpCAS, Key: DecisionKey(pt.id), Prev: valPending, Value: valAbort})
	}
	return nil
}

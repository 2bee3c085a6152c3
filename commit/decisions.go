package commit

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/kv"
)

// In Consensus mode a transaction's decision lives in the consensus
// group's key-value store under DecisionKey(id). Its value goes from
// "pending" (written by the coordinator before any Prepare) to "commit" or
// "abort" by compare-and-set, so exactly one decision wins: the
// coordinator's, or the abort of a participant that gave up on it. The
// coordinator deletes the key once every participant has acknowledged.
var (
	valPending = []byte("pending")
	valCommit  = []byte("commit")
	valAbort   = []byte("abort")
)

// DecisionKey is the consensus key that holds a transaction's decision in
// Consensus mode: "2pc/<id>".
func DecisionKey(id string) string { return "2pc/" + id }

func decisionValue(commit bool) []byte {
	if commit {
		return valCommit
	}
	return valAbort
}

// kvOp is what a consensus request was for.
type kvOp uint8

const (
	kvPutPending kvOp = iota + 1 // coordinator: "pending" before the Prepares
	kvDecide                     // coordinator: CAS pending → decision
	kvRecover                    // coordinator after a restart: read the decision
	kvDelete                     // coordinator: every participant acknowledged
	kvRead                       // participant in doubt: read the decision
	kvAbandon                    // participant in doubt too long: CAS pending → abort
)

// kvResult brings a consensus request's result back to the protocol.
type kvResult struct {
	w   *worker // the incarnation that asked
	op  kvOp
	tx  string
	res kv.Result
	err error // the request failed (see kv.Request)
}

// consensusWait bounds the wait for the raft protocol's answer, which
// comes within its own RequestTimeout (or as an error when it restarts):
// only a stuck node reaches it.
const consensusWait = time.Minute

// ask sends the node's raft protocol a request whose result comes back as
// an event, to onConsensus. Without a raft protocol that error is handled
// at once.
func (p *Protocol) ask(ctx *actors.Context, op kvOp, tx string, req kv.Request) error {
	w, on := p.w, alive(p, p.onConsensus)
	err := actors.Request(ctx, consensus.Name, req, consensusWait, func(ctx *actors.Context, res kv.Result, err error) error {
		return on(ctx, &kvResult{w: w, op: op, tx: tx, res: res, err: err})
	})
	if err != nil {
		return p.onConsensus(ctx, &kvResult{w: w, op: op, tx: tx, err: fmt.Errorf("%w: %v", ErrNoConsensus, err)})
	}
	return nil
}

func (p *Protocol) putPending(ctx *actors.Context, t *coordTx) error {
	t.kvBusy = true
	return p.ask(ctx, kvPutPending, t.id, kv.Request{Op: kv.OpPut, Key: DecisionKey(t.id), Value: valPending})
}

func (p *Protocol) recordDecision(ctx *actors.Context, t *coordTx) error {
	t.kvBusy = true
	return p.ask(ctx, kvDecide, t.id, kv.Request{Op: kv.OpCAS, Key: DecisionKey(t.id), Prev: valPending, Value: decisionValue(t.want)})
}

func (p *Protocol) readDecision(ctx *actors.Context, t *coordTx) error {
	t.kvBusy = true
	return p.ask(ctx, kvRecover, t.id, kv.Request{Op: kv.OpGet, Key: DecisionKey(t.id)})
}

func (p *Protocol) deleteDecision(ctx *actors.Context, t *coordTx) error {
	t.kvBusy = true
	return p.ask(ctx, kvDelete, t.id, kv.Request{Op: kv.OpDelete, Key: DecisionKey(t.id)})
}

// retryConsensus asks again what failed.
func (p *Protocol) retryConsensus(ctx *actors.Context, t *coordTx) error {
	switch {
	case t.forgetting:
		return p.deleteDecision(ctx, t)
	case t.phase == phasePending:
		return p.putPending(ctx, t)
	case t.phase == phaseDeciding:
		return p.recordDecision(ctx, t)
	case t.phase == phaseRecovering:
		return p.readDecision(ctx, t)
	}
	return nil
}

func (p *Protocol) onConsensus(ctx *actors.Context, r *kvResult) error {
	if r.w != p.w {
		return nil // asked by an earlier incarnation
	}
	if r.op >= kvRead {
		return p.participantConsensus(ctx, r)
	}
	t := p.coord[r.tx]
	if t == nil {
		return nil
	}
	t.kvBusy = false
	if r.err != nil {
		p.log.Debug().Err(r.err).Str("tx", t.id).Msg("consensus request failed")
	}
	switch r.op {
	case kvPutPending:
		if t.phase != phasePending {
			return nil
		}
		if r.err != nil && definite(r.err) && ctx.Now().Sub(t.submitted) < p.cfg.VoteTimeout {
			// Certainly not applied (no leader, proposal dropped): asking
			// again cannot leave a stray "pending" behind.
			t.kvAt = ctx.Now().Add(p.cfg.RetryInterval)
			return nil
		}
		if r.err != nil {
			// No Prepare was sent: nobody is in doubt. The key may still
			// appear (a timed-out write can be applied later); the abort
			// covers it if it does by then.
			return p.decide(ctx, t, false, fmt.Sprintf("the consensus group did not record the transaction: %v", r.err))
		}
		if p.at(ctx, stepPending, t.id) {
			return nil
		}
		return p.sendPrepares(ctx, t)
	case kvDecide, kvRecover:
		if r.err != nil {
			t.kvAt = ctx.Now().Add(p.cfg.RetryInterval)
			return nil
		}
		return p.learnt(ctx, t, r.op, r.res)
	case kvDelete:
		if r.err != nil {
			t.kvAt = ctx.Now().Add(p.cfg.RetryInterval)
			return nil
		}
		return p.drop(t)
	}
	return nil
}

// definite reports whether a consensus error means the request was
// certainly not applied.
func definite(err error) bool {
	return errors.Is(err, consensus.ErrNoLeader) || errors.Is(err, consensus.ErrProposalDropped)
}

// learnt handles what the group says of a coordinator's transaction: the
// result of its compare-and-set, or of its read after a restart.
func (p *Protocol) learnt(ctx *actors.Context, t *coordTx, op kvOp, res kv.Result) error {
	if op == kvDecide && res.OK {
		return p.decided(ctx, t, t.want)
	}
	switch {
	case !res.Found:
		// No key: "pending" was never applied, so no participant
		// prepared; or (after a restart) the key was deleted once every
		// participant acknowledged. Nothing can commit.
		if op == kvRecover {
			return p.drop(t)
		}
		if t.want {
			p.log.Error().Str("tx", t.id).Msg("the decision key vanished before the decision; aborting")
		}
		return p.decided(ctx, t, false)
	case bytes.Equal(res.Value, valCommit), bytes.Equal(res.Value, valAbort):
		commit := bytes.Equal(res.Value, valCommit)
		if op == kvDecide && t.want && !commit {
			t.reason = "a participant aborted the transaction in the consensus group (in doubt longer than AbandonAfter)"
		}
		return p.decided(ctx, t, commit)
	case bytes.Equal(res.Value, valPending) && op == kvRecover:
		return p.decide(ctx, t, false, "the coordinator restarted before deciding")
	}
	p.log.Error().Str("tx", t.id).Str("value", string(res.Value)).Msg("unexpected value under the decision key; asking again")
	t.kvAt = ctx.Now().Add(p.cfg.RetryInterval)
	return nil
}

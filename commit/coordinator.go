package commit

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/troupe-dev/troupe/actors"
	pb "github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// phase is where a coordinator's transaction stands.
type phase uint8

const (
	phaseAccepted   phase = iota + 1 // submitted; begins at the next event (begin)
	phasePending                     // Consensus: recording "pending" in the group
	phasePreparing                   // Prepares sent, collecting votes
	phaseDeciding                    // Consensus: recording the decision in the group
	phaseRecovering                  // Consensus, after a restart: reading the group
	phaseDecided                     // decided; sending the decision until acknowledged
)

// coordTx is a transaction this node coordinates.
type coordTx struct {
	id        string
	mode      Mode
	parts     []Part            // nil after a restart (the ops are not logged)
	nodes     []actors.NodeName // participants, in the submission's order
	phase     phase
	votes     map[actors.NodeName]bool
	submitted time.Time
	begun     time.Time                    // Prepares first sent (VoteTimeout)
	retry     map[actors.NodeName]*backoff // next retransmission, per participant
	commit    bool                         // the decision (phaseDecided)
	want      bool                         // the decision being recorded (phaseDeciding)
	reason    string                       // why it aborts
	// needAck holds the participants that may have prepared and have not
	// acknowledged the decision.
	needAck map[actors.NodeName]bool
	logged  bool // the log holds a record of it
	sent    bool // Prepares were (or may have been) sent
	// reply answers the Submit (the zero Reply, answered already, for a
	// transaction recovered after a restart: its client is gone).
	reply   actors.Reply[Outcome]
	doneErr error // the answer instead of the outcome (an unknown node)

	kvBusy     bool      // a consensus request is in flight
	kvAt       time.Time // retry a failed consensus request at
	forgetting bool      // Consensus: deleting the decision key
}

func (t *coordTx) state() State {
	switch t.phase {
	case phaseAccepted, phasePending, phasePreparing:
		return Preparing
	case phaseDeciding, phaseRecovering:
		return Deciding
	}
	if t.commit {
		return Committed
	}
	return Aborted
}

func modeOf(m Mode) pb.TxMode {
	if m == Consensus {
		return pb.TxMode_TX_MODE_CONSENSUS
	}
	return pb.TxMode_TX_MODE_TEXTBOOK
}

func (p *Protocol) onSubmit(ctx *actors.Context, s Submit, reply actors.Reply[Outcome]) error {
	if p.dead {
		return fmt.Errorf("%w: halted", ErrStopped)
	}
	if err := p.checkTx(s.Tx); err != nil {
		return err
	}
	p.seq++
	id := txID{coordinator: p.self, gen: p.gen, seq: p.seq}.String()
	t := &coordTx{id: id, mode: p.cfg.Mode, parts: s.Tx.Parts, votes: map[actors.NodeName]bool{},
		retry: map[actors.NodeName]*backoff{}, needAck: map[actors.NodeName]bool{}, reply: reply, phase: phaseAccepted, submitted: ctx.Now()}
	for _, part := range s.Tx.Parts {
		t.nodes = append(t.nodes, part.Node)
	}
	p.coord[id] = t
	// The rest is an event of its own: from here on a failure (of the log)
	// restarts the protocol, as in any other handler, where a request
	// handler's error would only answer the request.
	if err := ctx.Post(begin{id}); err != nil {
		delete(p.coord, id)
		return fmt.Errorf("commit: transaction %s not begun: %w", id, err)
	}
	return nil
}

// begin starts a transaction that onSubmit accepted.
type begin struct{ id string }

func (p *Protocol) onBegin(ctx *actors.Context, b begin) error {
	t := p.coord[b.id]
	if t == nil || t.phase != phaseAccepted {
		return nil
	}
	if p.at(ctx, stepBegin, t.id) {
		return nil
	}
	if t.mode == Textbook {
		return p.sendPrepares(ctx, t)
	}
	// The group must know the transaction before any participant can be
	// in doubt about it: a participant that gives up turns "pending" into
	// "abort", which only works on a key that exists.
	rec := &pb.TxRecord{State: pb.TxState_TX_STATE_BEGUN, Mode: pb.TxMode_TX_MODE_CONSENSUS, Participants: wireNames(t.nodes)}
	if err := p.db.write(change{bucketCoord, t.id, rec}); err != nil {
		return err
	}
	t.logged = true
	t.phase = phasePending
	return p.putPending(ctx, t)
}

// sendPrepares starts phase one.
func (p *Protocol) sendPrepares(ctx *actors.Context, t *coordTx) error {
	t.phase, t.sent = phasePreparing, true
	now := ctx.Now()
	t.begun = now
	for i, part := range t.parts {
		m := &pb.TxPrepare{Tx: t.id, Mode: modeOf(t.mode), Participants: wireNames(t.nodes), Op: part.Op}
		if err := send(p, ctx, part.Node, m); err != nil {
			if errors.Is(err, transport.ErrUnknownNode) {
				t.votes[part.Node] = false // it cannot have prepared
				t.doneErr = fmt.Errorf("%w: %s: %v", ErrUnknownNode, part.Node, err)
				return p.decide(ctx, t, false, fmt.Sprintf("unknown node %s", part.Node))
			}
			p.log.Debug().Err(err).Str("to", string(part.Node)).Msg("Prepare not sent; it will be sent again")
		}
		t.retry[part.Node] = p.newBackoff(now)
		if i == 0 && p.at(ctx, stepPrepareSentOne, t.id) {
			return nil
		}
	}
	p.at(ctx, stepPrepareSent, t.id)
	return nil
}

func (p *Protocol) onVote(ctx *actors.Context, from actors.NodeName, m *pb.TxVote) error {
	t := p.coord[m.Tx]
	if t == nil {
		if m.Yes {
			// Presumed abort: a transaction this coordinator does not know
			// was never decided commit (a commit stays logged until every
			// participant acknowledged it).
			sendOrLog(p, ctx, from, &pb.TxDecision{Tx: m.Tx})
		}
		return nil
	}
	if !slices.Contains(t.nodes, from) {
		p.badInput(from, fmt.Sprintf("a vote on %s, which it takes no part in", m.Tx))
		return nil
	}
	if t.phase == phaseDecided {
		if t.needAck[from] {
			sendOrLog(p, ctx, from, &pb.TxDecision{Tx: t.id, Commit: t.commit})
		}
		return nil
	}
	if _, ok := t.votes[from]; ok {
		return nil // a duplicate, or an answer to a retransmitted Prepare
	}
	t.votes[from] = m.Yes
	if t.phase != phasePreparing {
		return nil // deciding already; the vote counts for who must hear the decision
	}
	if !m.Yes {
		return p.decide(ctx, t, false, fmt.Sprintf("%s voted no: %s", from, m.Reason))
	}
	if len(t.votes) < len(t.nodes) {
		return nil
	}
	if p.at(ctx, stepVotesIn, t.id) {
		return nil
	}
	return p.decide(ctx, t, true, "")
}

// decide records the decision: in Textbook mode a commit in the log (an
// abort is not logged: presumed abort), in Consensus mode either in the
// group.
func (p *Protocol) decide(ctx *actors.Context, t *coordTx, commit bool, reason string) error {
	if t.phase == phaseDeciding || t.phase == phaseDecided {
		return nil
	}
	if !commit {
		t.reason = reason
	}
	if t.mode == Textbook {
		if commit {
			rec := &pb.TxRecord{State: pb.TxState_TX_STATE_COMMITTED, Mode: pb.TxMode_TX_MODE_TEXTBOOK, Participants: wireNames(t.nodes)}
			if err := p.db.write(change{bucketCoord, t.id, rec}); err != nil {
				return err
			}
			t.logged = true
		}
		return p.decided(ctx, t, commit)
	}
	t.phase, t.want = phaseDeciding, commit
	return p.recordDecision(ctx, t)
}

// decided carries a durable decision out: the client learns it, and every
// participant that may have prepared is told until it acknowledges.
func (p *Protocol) decided(ctx *actors.Context, t *coordTx, commit bool) error {
	t.phase, t.commit = phaseDecided, commit
	if p.at(ctx, stepDecided, t.id) {
		return nil
	}
	if commit {
		p.stats.Committed++
	} else {
		p.stats.Aborted++
	}
	if !t.reply.Answered() {
		var err error
		if t.doneErr != nil {
			err = t.reply.Fail(fmt.Errorf("%w; transaction %s aborted", t.doneErr, t.id))
		} else {
			err = t.reply.Send(Outcome{ID: t.id, Committed: commit, Reason: t.reason})
		}
		if err != nil {
			p.log.Warn().Err(err).Str("tx", t.id).Msg("the outcome was not sent to the client")
		}
	}
	for _, n := range t.nodes {
		if yes, voted := t.votes[n]; t.sent && (!voted || yes) {
			t.needAck[n] = true
		}
	}
	now := ctx.Now()
	for i, n := range slices.Sorted(maps.Keys(t.needAck)) {
		sendOrLog(p, ctx, n, &pb.TxDecision{Tx: t.id, Commit: commit})
		t.retry[n] = p.newBackoff(now)
		if i == 0 && p.at(ctx, stepDecisionSentOne, t.id) {
			return nil
		}
	}
	if p.at(ctx, stepDecisionSent, t.id) {
		return nil
	}
	if (t.mode == Textbook && !commit) || len(t.needAck) == 0 {
		// Presumed abort: participants that miss the abort ask, and a
		// coordinator that does not know a transaction answers abort.
		return p.forget(ctx, t)
	}
	return nil
}

func (p *Protocol) onAck(ctx *actors.Context, from actors.NodeName, m *pb.TxAck) error {
	t := p.coord[m.Tx]
	if t == nil || t.phase != phaseDecided || !t.needAck[from] {
		return nil
	}
	delete(t.needAck, from)
	delete(t.retry, from)
	if len(t.needAck) > 0 || t.forgetting {
		return nil
	}
	if p.at(ctx, stepAcked, t.id) {
		return nil
	}
	return p.forget(ctx, t)
}

// forget drops a transaction every participant is done with: its log
// record, and in Consensus mode its key in the group first.
func (p *Protocol) forget(ctx *actors.Context, t *coordTx) error {
	if t.mode == Consensus && t.logged {
		t.forgetting = true
		return p.deleteDecision(ctx, t)
	}
	return p.drop(t)
}

// drop removes a transaction from the log and from memory.
func (p *Protocol) drop(t *coordTx) error {
	if t.logged {
		if err := p.db.write(change{bucket: bucketCoord, tx: t.id}); err != nil {
			return err
		}
	}
	delete(p.coord, t.id)
	return nil
}

func (p *Protocol) onQuery(ctx *actors.Context, from actors.NodeName, m *pb.TxQuery) error {
	t := p.coord[m.Tx]
	switch {
	case t == nil:
		// Presumed abort (see onVote). A query for a transaction named by
		// another coordinator is bad input; it gets the same answer.
		if CoordinatorOf(m.Tx) != p.self {
			p.badInput(from, fmt.Sprintf("a query about %s, which %s does not coordinate", m.Tx, p.self))
		}
		sendOrLog(p, ctx, from, &pb.TxDecision{Tx: m.Tx})
	case !slices.Contains(t.nodes, from):
		p.badInput(from, fmt.Sprintf("a query about %s, which it takes no part in", m.Tx))
	case t.phase == phaseDecided:
		sendOrLog(p, ctx, from, &pb.TxDecision{Tx: t.id, Commit: t.commit})
	}
	return nil // undecided: the participant asks again
}

// tickCoordinator enforces the vote timeout and retransmits what has no
// answer yet.
func (p *Protocol) tickCoordinator(ctx *actors.Context, t *coordTx, now time.Time) error {
	switch t.phase {
	case phasePreparing:
		if now.Sub(t.begun) >= p.cfg.VoteTimeout {
			var missing []actors.NodeName
			for _, n := range t.nodes {
				if _, ok := t.votes[n]; !ok {
					missing = append(missing, n)
				}
			}
			return p.decide(ctx, t, false, fmt.Sprintf("no vote from %s within %v (VoteTimeout)", strings.Join(wireNames(missing), ", "), p.cfg.VoteTimeout))
		}
		for _, part := range t.parts {
			if _, ok := t.votes[part.Node]; !ok && p.due(t.retry[part.Node], now) {
				sendOrLog(p, ctx, part.Node, &pb.TxPrepare{Tx: t.id, Mode: modeOf(t.mode), Participants: wireNames(t.nodes), Op: part.Op})
			}
		}
	case phaseDecided:
		for _, n := range slices.Sorted(maps.Keys(t.needAck)) {
			if b := t.retry[n]; b != nil && p.due(b, now) {
				sendOrLog(p, ctx, n, &pb.TxDecision{Tx: t.id, Commit: t.commit})
			}
		}
	}
	if t.mode == Consensus && !t.kvBusy && !t.kvAt.IsZero() && !now.Before(t.kvAt) {
		t.kvAt = time.Time{}
		return p.retryConsensus(ctx, t)
	}
	return nil
}

// recoverCoordinator restores a transaction from its log record.
func (p *Protocol) recoverCoordinator(ctx *actors.Context, id string, rec *pb.TxRecord, now time.Time) {
	t := &coordTx{id: id, nodes: nodeNames(rec.Participants), votes: map[actors.NodeName]bool{}, retry: map[actors.NodeName]*backoff{},
		needAck: map[actors.NodeName]bool{}, logged: true, sent: true}
	p.coord[id] = t
	p.stats.RecoveredCoordinator++
	if rec.Mode == pb.TxMode_TX_MODE_CONSENSUS {
		// Decided or not, the group knows; the participants' votes are
		// lost, so every participant is told the decision. The first
		// tick asks.
		t.mode, t.phase, t.kvAt = Consensus, phaseRecovering, now
		return
	}
	// Textbook: only commits are logged. Tell every participant again.
	t.mode, t.phase, t.commit = Textbook, phaseDecided, true
	for _, n := range t.nodes {
		t.needAck[n] = true
		t.retry[n] = &backoff{next: now, delay: p.cfg.RetryInterval / 2}
	}
}

package commit

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
	pb "github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// New returns the factory of the commit protocol with cfg, or
// cfg.Validate's error. Start it on every node that coordinates or takes
// part in transactions (after the consensus protocol in Consensus mode).
func New(cfg Config) (actors.Factory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return func() actors.Protocol { return &Protocol{cfg: cfg} }, nil
}

// Protocol is two-phase commit on one node, in both roles: coordinator of
// the transactions submitted to it, participant in those that name it.
type Protocol struct {
	cfg  Config
	self actors.NodeName
	log  *zerolog.Logger
	db   *txlog
	res  Resource
	w    *worker
	gen  uint64 // this incarnation's generation, in transaction ids
	seq  uint64
	raft bool // the consensus protocol runs on this node
	dead bool // halted by fault injection (steps.go)

	coord map[string]*coordTx // transactions this node coordinates
	parts map[string]*part    // this node's parts not yet ended
	ended map[string]endedPart
	order []string                   // ended parts, oldest first (retention)
	gens  map[actors.NodeName]uint64 // highest generation seen in a Prepare, per coordinator
	endN  uint64                     // end order of the latest ended part

	stats Stats
}

type endedPart struct {
	committed bool
	logged    bool // has a record in the log
}

// backoff schedules the retransmissions of one message.
type backoff struct {
	next  time.Time
	delay time.Duration
}

func (p *Protocol) newBackoff(now time.Time) *backoff {
	return &backoff{next: now.Add(p.cfg.RetryInterval), delay: p.cfg.RetryInterval}
}

// due reports whether the message is due again, and if so schedules the
// next time with a doubled delay.
func (p *Protocol) due(b *backoff, now time.Time) bool {
	if now.Before(b.next) {
		return false
	}
	b.delay = min(2*b.delay, p.cfg.MaxRetryInterval)
	b.next = now.Add(b.delay)
	p.stats.Resent++
	return true
}

type tick struct{}

// loopback carries a message from this node's one role to its other (a
// coordinator that is also a participant) through the mailbox, not the
// network.
type loopback[M proto.Message] struct{ m M }

// Name is commit.Name.
func (p *Protocol) Name() actors.ProtocolName { return Name }

// Init opens the log and the resource, recovers the transactions the log
// holds, and starts the retransmission tick.
func (p *Protocol) Init(ctx *actors.Context) error {
	if err := p.cfg.Validate(); err != nil {
		return err
	}
	p.self, p.log = ctx.Node(), ctx.Log()
	if p.cfg.NoSync {
		p.log.Warn().Msg("commit log fsync is OFF (NoSync): a machine crash can lose votes and decisions; for tests and benchmarks only")
	}
	db, st, err := openLog(filepath.Join(p.cfg.DataDir, string(p.self)), p.cfg.NoSync)
	if err != nil {
		return err
	}
	// Generations number the incarnations: a transaction id is never
	// reused, not even after the log is lost (a new log starts from the
	// clock), so no participant mistakes a new transaction for an old one.
	p.gen = st.gen + 1
	if st.gen == 0 {
		p.gen = max(uint64(ctx.Now().UnixNano()), 1)
	}
	if err := db.setGeneration(p.gen); err != nil {
		return errors.Join(err, db.close())
	}
	res, err := p.cfg.Resource(p.self)
	if err != nil {
		return errors.Join(fmt.Errorf("commit: opening the resource of %s: %w", p.self, err), db.close())
	}
	prepared, err := res.Prepared()
	if err != nil {
		return errors.Join(fmt.Errorf("commit: listing the prepared transactions of %s's resource: %w", p.self, err), res.Close(), db.close())
	}
	// A request fails at once when no protocol of that name runs.
	p.raft = actors.Request(ctx, consensus.Name, consensus.StatusRequest{}, 0,
		func(*actors.Context, consensus.Status, error) error { return nil }) == nil
	if p.cfg.Mode == Consensus && !p.raft {
		return errors.Join(fmt.Errorf("%w %s: start consensus.New before commit.New, or use Mode %q", ErrNoConsensus, p.self, Textbook), res.Close(), db.close())
	}
	p.db, p.res = db, res
	p.w = startWorker(res, ctx.Ref(), p.cfg.Inline)
	p.coord, p.parts = map[string]*coordTx{}, map[string]*part{}
	p.ended, p.gens = map[string]endedPart{}, map[actors.NodeName]uint64{}

	handle(ctx, p, p.onPrepare)
	handle(ctx, p, p.onVote)
	handle(ctx, p, p.onDecision)
	handle(ctx, p, p.onAck)
	handle(ctx, p, p.onQuery)
	actors.OnRequestDeferred(ctx, p.onSubmit)
	actors.OnPost(ctx, alive(p, p.onBegin))
	actors.OnPost(ctx, alive(p, p.onResourceDone))
	actors.OnTimer(ctx, alive(p, p.onTick))
	actors.OnRequest(ctx, p.onStatus)
	actors.OnRequest(ctx, p.onStats)

	if err := p.recover(ctx, st, prepared); err != nil {
		return err
	}
	ctx.Every(p.tickEvery(), tick{})
	return nil
}

// tickEvery is the period of the tick that checks deadlines and
// retransmissions: a quarter of the shortest of them.
func (p *Protocol) tickEvery() time.Duration {
	return max(min(p.cfg.RetryInterval, p.cfg.PrepareTimeout, p.cfg.VoteTimeout)/4, time.Millisecond)
}

// Stop stops the resource calls, answers the submissions still waiting
// with ErrStopped, and closes the resource and the log.
func (p *Protocol) Stop(*actors.Context) {
	if p.w != nil {
		p.w.stop()
	}
	for _, id := range slices.Sorted(maps.Keys(p.coord)) {
		if t := p.coord[id]; !t.reply.Answered() {
			_ = t.reply.Fail(fmt.Errorf("%w: transaction %s", ErrStopped, id))
		}
	}
	if p.res != nil {
		if err := p.res.Close(); err != nil {
			p.log.Error().Err(err).Msg("closing the resource")
		}
	}
	if p.db != nil {
		if err := p.db.close(); err != nil {
			p.log.Error().Err(err).Msg("closing the commit log")
		}
	}
}

// handle registers h for a message from the network and for the same
// message from this node's other role (loopback).
func handle[M proto.Message](ctx *actors.Context, p *Protocol, h func(*actors.Context, actors.NodeName, M) error) {
	actors.OnMessage(ctx, func(c *actors.Context, from actors.NodeName, m M) error {
		if p.dead {
			return nil
		}
		return h(c, from, m)
	})
	actors.OnPost(ctx, func(c *actors.Context, l loopback[M]) error {
		if p.dead {
			return nil
		}
		return h(c, p.self, l.m)
	})
}

// alive wraps a local handler so that it does nothing once the protocol
// is halted.
func alive[T any](p *Protocol, h func(*actors.Context, T) error) func(*actors.Context, T) error {
	return func(ctx *actors.Context, v T) error {
		if p.dead {
			return nil
		}
		return h(ctx, v)
	}
}

// send sends m best effort to this protocol on node `to`, or through the
// mailbox when `to` is this node.
func send[M proto.Message](p *Protocol, ctx *actors.Context, to actors.NodeName, m M) error {
	if to == p.self {
		return ctx.Post(loopback[M]{m})
	}
	return ctx.Send(to, m)
}

// sendOrLog sends and logs a failure: the message is retransmitted (or
// answered again) later, so a failed send is not fatal.
func sendOrLog[M proto.Message](p *Protocol, ctx *actors.Context, to actors.NodeName, m M) {
	if err := send(p, ctx, to, m); err != nil {
		p.log.Debug().Err(err).Str("to", string(to)).Msg("commit message not sent")
	}
}

func (p *Protocol) badInput(from actors.NodeName, what string) {
	p.log.Warn().Str("from", string(from)).Msg("bad input: " + what)
}

func (p *Protocol) onTick(ctx *actors.Context, _ tick) error {
	now := ctx.Now()
	for _, id := range slices.Sorted(maps.Keys(p.coord)) {
		if t := p.coord[id]; t != nil {
			if err := p.tickCoordinator(ctx, t, now); err != nil || p.dead {
				return err
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(p.parts)) {
		if pt := p.parts[id]; pt != nil {
			if err := p.tickParticipant(ctx, pt, now); err != nil || p.dead {
				return err
			}
		}
	}
	return nil
}

func (p *Protocol) onStatus(_ *actors.Context, req StatusRequest) (TxStatus, error) {
	st := TxStatus{ID: req.ID}
	if t := p.coord[req.ID]; t != nil {
		st.Coordinator = t.state()
	}
	if pt := p.parts[req.ID]; pt != nil {
		st.Participant = pt.state
	} else if e, ok := p.ended[req.ID]; ok {
		st.Participant = Aborted
		if e.committed {
			st.Participant = Committed
		}
	}
	return st, nil
}

func (p *Protocol) onStats(*actors.Context, StatsRequest) (Stats, error) {
	s := p.stats
	s.Coordinating = len(p.coord)
	s.Preparing, s.InDoubt = 0, 0
	for _, pt := range p.parts {
		if pt.state == Preparing {
			s.Preparing++
		} else {
			s.InDoubt++
		}
	}
	return s, nil
}

// checkTx refuses a transaction that cannot run, before anything happens.
func (p *Protocol) checkTx(tx Transaction) error {
	switch n := len(tx.Parts); {
	case n == 0:
		return fmt.Errorf("%w: no participants; a transaction needs at least one Part (a node and its op)", ErrInvalidTransaction)
	case n > p.cfg.MaxParticipants:
		return fmt.Errorf("%w: %d participants; at most %d (Config.MaxParticipants)", ErrInvalidTransaction, n, p.cfg.MaxParticipants)
	}
	for i, part := range tx.Parts {
		if err := transport.ValidateName("participant node", part.Node); err != nil {
			return fmt.Errorf("%w: part %d: %v", ErrInvalidTransaction, i, err)
		}
		if j := slices.IndexFunc(tx.Parts[:i], func(q Part) bool { return q.Node == part.Node }); j >= 0 {
			return fmt.Errorf("%w: node %s is named by parts %d and %d; give each node one Part, with all its changes in one op", ErrInvalidTransaction, part.Node, j, i)
		}
		if len(part.Op) > p.cfg.MaxOpBytes {
			return fmt.Errorf("%w: the op of %s is %d bytes; at most %d (Config.MaxOpBytes)", ErrInvalidTransaction, part.Node, len(part.Op), p.cfg.MaxOpBytes)
		}
		if len(p.cfg.Nodes) > 0 && !slices.Contains(p.cfg.Nodes, part.Node) {
			return fmt.Errorf("%w: %s (part %d); the nodes are %v", ErrUnknownNode, part.Node, i, p.cfg.Nodes)
		}
	}
	return nil
}

// recover rebuilds the state of the transactions the log holds: as
// coordinator, decisions to carry out (and in Consensus mode transactions
// to look up in the group); as participant, parts in doubt; and it aborts
// the parts the resource prepared but this node never voted yes for.
func (p *Protocol) recover(ctx *actors.Context, st *loaded, prepared []string) error {
	now := ctx.Now()
	for _, id := range slices.Sorted(maps.Keys(st.coord)) {
		p.recoverCoordinator(ctx, id, st.coord[id], now)
	}
	type ended struct {
		id string
		n  uint64
	}
	var ends []ended
	for _, id := range slices.Sorted(maps.Keys(st.part)) {
		rec := st.part[id]
		switch rec.State {
		case pb.TxState_TX_STATE_PREPARED:
			p.parts[id] = &part{id: id, coordinator: actors.NodeName(rec.Coordinator), mode: rec.Mode, state: InDoubt,
				since: now, query: &backoff{next: now, delay: p.cfg.RetryInterval / 2}}
			p.stats.RecoveredInDoubt++
		case pb.TxState_TX_STATE_COMMITTED, pb.TxState_TX_STATE_ABORTED:
			p.ended[id] = endedPart{committed: rec.State == pb.TxState_TX_STATE_COMMITTED, logged: true}
			ends = append(ends, ended{id, rec.Ended})
			p.endN = max(p.endN, rec.Ended)
		default:
			return fmt.Errorf("%w: %s: participant record of %s in state %v", ErrCorrupt, p.db.path, id, rec.State)
		}
	}
	slices.SortFunc(ends, func(a, b ended) int { return cmp.Compare(a.n, b.n) })
	for _, e := range ends {
		p.order = append(p.order, e.id)
	}
	for _, id := range prepared {
		if _, ok := p.parts[id]; ok {
			continue
		}
		if e, ok := p.ended[id]; ok && e.committed {
			p.log.Error().Str("tx", id).Msg("the resource still holds a part the log says committed: committing it")
			p.w.push(job{kind: jobCommit, tx: id})
			continue
		}
		p.log.Info().Str("tx", id).Msg("aborting a part the resource prepared before a crash, never voted for")
		p.w.push(job{kind: jobAbort, tx: id})
	}
	if n := len(p.coord) + len(p.parts); n > 0 {
		p.log.Info().Int("coordinator", len(p.coord)).Int("in_doubt", len(p.parts)).Uint64("generation", p.gen).
			Msg("transactions recovered from the commit log")
	}
	return nil
}

// wireNames are node names as the protobuf messages and the log carry them.
func wireNames(names []actors.NodeName) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = string(n)
	}
	return out
}

// nodeNames are the node names of a message or a log record.
func nodeNames(wire []string) []actors.NodeName {
	out := make([]actors.NodeName, len(wire))
	for i, s := range wire {
		out[i] = actors.NodeName(s)
	}
	return out
}

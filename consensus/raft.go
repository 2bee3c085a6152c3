package consensus

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/messages"
)

// New returns the factory of the Raft protocol with cfg, or cfg.Validate's
// error. Start it on every node of the group.
func New(cfg Config) (actors.Factory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return func() actors.Protocol { return &Raft{cfg: cfg} }, nil
}

// Raft is the protocol: one etcd raft.RawNode driven by the protocol's
// handlers, its log on disk, and the state machines it replicates
// (Config.Machines).
type Raft struct {
	cfg  Config
	node actors.NodeName
	id   uint64
	log  *zerolog.Logger

	disk *disk
	w    *writer // makes the disk writes, off the mailbox (writer.go)
	// last: the index of the last entry handed to the writer, written or
	// not: raft's last index, which peers' messages are checked against
	// (inbound.go) since they may acknowledge entries still being written
	last uint64
	// lateHS: a hard state that only moved the commit index, held back
	// from the writer until the next write goes (or Stop): the commit index
	// need not be durable (disk.save), and a write of its own would cost
	// the writer a pass per commit. hsTerm, hsVote: the term and vote of
	// the last hard state handed to the writer.
	lateHS         *pb.HardState
	hsTerm, hsVote uint64

	mem       *raft.MemoryStorage
	rn        *raft.RawNode
	machines  []*hosted                  // in Config.Machines' order
	byName    map[string]*hosted         // machines by name
	reqTypes  map[reflect.Type]string    // request type → the machine that serves it (Router)
	initErr   error                      // a machine's registration that failed (Router)
	names     map[uint64]actors.NodeName // raft id → node name
	confState *pb.ConfState
	applied   uint64
	snapIndex uint64
	// appliedBytes: bytes of entries applied since the last snapshot
	appliedBytes uint64

	epoch      uint64 // this incarnation, in proposals and read contexts
	seq        uint64
	pending    map[uint64]*pendingWrite // by seq
	unproposed []*pendingWrite          // writes without a live copy, proposed (batched) at the next Ready a leader is reachable
	unissued   []*pendingRead           // gets waiting for the next ReadIndex
	reads      map[uint64]*readIndexReq // by read context seq, waiting for their ReadState
	waiting    []readBatch              // read index known, waiting for applied to reach it
	admin      *pendingAdmin

	readyQueued bool
	// snapNow forces a snapshot after a configuration change, so that the
	// snapshot a new member may be sent has it in its ConfState (raft
	// refuses a snapshot whose configuration does not include it).
	snapNow    bool
	lead, term uint64 // last published leadership

	// lastHeard: the tick at which a raft message from each peer last
	// arrived (the quorum signal, quorum.go); ticks counts this
	// incarnation's ticks. Ticks, not the clock: a node whose handlers run
	// late counts as raft does.
	lastHeard map[uint64]uint64
	ticks     uint64
	// snapGen counts the snapshots streamed to each peer, so that only
	// the latest one's end reaches raft (snapstream.go).
	snapGen map[uint64]uint64
	// appliedTerm: the term of the last applied entry; decidedTerm: the
	// appliedTerm at which pending writes were last checked for dead copies
	appliedTerm, decidedTerm uint64

	made, received, proposals uint64
	fenced, reproposed        uint64         // copies skipped at apply (term fence); writes proposed again
	dropped                   uint64         // remote raft messages refused (onBatch)
	dropLog                   zerolog.Logger // rate-limited, for dropped messages
}

// pendingWrite is a command to a hosted machine this incarnation accepted
// and has not answered. At most one copy of it is live at a time: term is
// the term of that copy (0 while it has none: not proposed yet, or every
// copy proposed is known dead), and the term fence (applyCommand) lets a
// copy apply only from an entry of its own term.
type pendingWrite struct {
	// answer answers the request: with Apply's result, or err when it is
	// not nil (HandleCommand)
	answer   func(res any, err error) error
	cmd      *messages.RaftCommand
	deadline time.Time
	term     uint64
	queued   bool // in unproposed
	// lost: a snapshot from the leader replaced the log its copy may be
	// in, so its outcome can no longer be told (answered ErrTimeout)
	lost bool
}

// pendingRead is a lookup waiting for its read index (HandleLookup).
type pendingRead struct {
	// answer runs the lookup at index and answers the request with its
	// result, or answers err when it is not nil
	answer   func(index uint64, err error) error
	deadline time.Time
}

// readIndexReq is one ReadIndex in flight for a batch of gets. Raft does not
// retransmit a lost MsgReadIndex or heartbeat, so a batch without an answer
// after a few heartbeats asks again (reads are idempotent).
type readIndexReq struct {
	reads  []*pendingRead
	issued time.Time
}

type readBatch struct {
	index uint64
	reads []*pendingRead
}

type pendingAdmin struct {
	req      AdminRequest
	reply    actors.Reply[AdminResult]
	id       uint64
	ccType   pb.ConfChangeType
	deadline time.Time
}

// Self-messages.
type (
	tick     struct{}
	readyNow struct{}
)

// Name is consensus.Name, "raft".
func (p *Raft) Name() actors.ProtocolName { return Name }

// Init opens the data dir, restores the log and the store from it (or
// bootstraps the group), and starts ticking. With Config.ForceNewState, the
// first Init on a node applies it first ([PrepareDataDir]).
func (p *Raft) Init(ctx *actors.Context) error {
	if err := p.cfg.Validate(); err != nil {
		return err
	}
	p.node, p.id, p.log = ctx.Node(), ID(ctx.Node()), ctx.Log()
	p.dropLog = p.log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Second})
	if p.cfg.NoSync {
		p.log.Warn().Msg("raft fsync is OFF (NoSync): acknowledged writes can be lost if the machine crashes; for benchmarks only")
	}
	// ForceNewState applies when the protocol starts on a node, not at a
	// supervised restart: the state it started over with is this
	// incarnation's to keep, and a state lost while the node runs stops it
	// (ErrMissingState) rather than be set aside a second time.
	if p.cfg.ForceNewState && ctx.NodeStats().Protocols[ctx.Protocol()].Restarts == 0 {
		if err := PrepareDataDir(p.cfg, p.node, *p.log); err != nil {
			return err
		}
	}
	d, st, err := openDisk(filepath.Join(p.cfg.DataDir, string(p.node)), p.cfg.NoSync)
	if err != nil {
		return err
	}
	p.disk = d
	if d.repaired > 0 {
		p.log.Warn().Int64("bytes", d.repaired).Str("log", d.logDir).
			Msg("cut a torn write (never acknowledged: cut short or zero-filled by a crash before its fsync) off the end of the raft log")
	}
	p.mem = raft.NewMemoryStorage()
	p.machines, p.byName = nil, map[string]*hosted{}
	for _, m := range p.cfg.Machines {
		env := Env{Node: p.node, Log: p.log.With().Str("machine", m.Name).Logger(), Now: ctx.Now,
			ElectionTimeout: time.Duration(p.cfg.ElectionTicks) * p.cfg.TickInterval}
		sm := m.New(env)
		if sm == nil {
			return fmt.Errorf("%w: Machines: %q's New returned nil", ErrInvalidConfig, m.Name)
		}
		h := &hosted{name: m.Name, sm: sm, spec: m, env: env}
		h.ticker, _ = sm.(Ticker)
		p.machines = append(p.machines, h)
		p.byName[m.Name] = h
	}
	p.names = map[uint64]actors.NodeName{p.id: p.node}
	for _, name := range p.cfg.Peers {
		p.names[ID(name)] = name
	}
	p.confState = &pb.ConfState{}
	if !raft.IsEmptySnap(st.snap) {
		if err := p.mem.ApplySnapshot(st.snap); err != nil {
			return fmt.Errorf("consensus: restoring the snapshot: %w", err)
		}
		if err := p.restore(st.snap); err != nil {
			return err
		}
	}
	if p.cfg.forgetVote && st.hs != nil {
		st.hs.Vote = nil // the deliberate bug (Config.forgetVote)
	}
	if !raft.IsEmptyHardState(st.hs) {
		if err := p.mem.SetHardState(st.hs); err != nil {
			return err
		}
	}
	if err := p.mem.Append(st.entries); err != nil {
		return fmt.Errorf("consensus: restoring the log: %w", err)
	}
	for _, e := range st.entries {
		if e.GetType() == pb.EntryType_EntryNormal && len(e.Data) > 0 {
			if _, err := decodeRaftEntry(e.GetIndex(), e.Data); err != nil {
				return err // refuse at start, before anything of it applies
			}
		}
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        p.id,
		ElectionTick:              p.cfg.ElectionTicks,
		HeartbeatTick:             p.cfg.HeartbeatTicks,
		Storage:                   p.mem,
		Applied:                   p.applied,
		MaxSizePerMsg:             p.cfg.MaxSizePerMsg,
		MaxCommittedSizePerReady:  p.cfg.MaxSizePerMsg * 4,
		MaxUncommittedEntriesSize: p.cfg.MaxUncommitted,
		MaxInflightMsgs:           p.cfg.MaxInflightMsgs,
		MaxInflightBytes:          p.cfg.MaxInflightBytes,
		AsyncStorageWrites:        true,
		CheckQuorum:               true,
		PreVote:                   true,
		StepDownOnRemoval:         true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		Logger:                    &raftLogger{l: p.log.With().Str("component", "etcd-raft").Logger()},
	})
	if err != nil {
		return fmt.Errorf("consensus: starting raft: %w", err)
	}
	p.rn = rn
	if st.empty() && !p.cfg.Join {
		var peers []raft.Peer
		for _, name := range p.cfg.sortedPeers() {
			peers = append(peers, raft.Peer{ID: ID(name), Context: []byte(name)})
		}
		if err := rn.Bootstrap(peers); err != nil {
			return fmt.Errorf("consensus: bootstrapping the group: %w", err)
		}
		p.log.Info().Any("peers", p.cfg.sortedPeers()).Msg("bootstrapped a new raft group")
	} else {
		p.log.Info().Uint64("snapshot", p.snapIndex).Int("entries", len(st.entries)).
			Uint64("term", st.hs.GetTerm()).Uint64("commit", st.hs.GetCommit()).Msg("raft state restored from the data dir")
	}
	p.epoch = uint64(ctx.Now().UnixNano())
	p.pending = map[uint64]*pendingWrite{}
	p.reads = map[uint64]*readIndexReq{}
	p.lastHeard = map[uint64]uint64{}
	ref := ctx.Ref()
	var hook func()
	if h, node := p.cfg.writeHook, p.node; h != nil {
		hook = func() { h(node) }
	}
	p.w = startWriter(p.disk, func(wr *written) { _ = ref.Post(wr) }, hook, p.cfg.Inline)
	p.last, _ = p.mem.LastIndex()
	p.hsTerm, p.hsVote = st.hs.GetTerm(), st.hs.GetVote()

	actors.OnMessage(ctx, p.onBatch)
	actors.OnStream(ctx, p.onSnapshot)
	actors.OnRequestDeferred(ctx, p.onAdmin)
	actors.OnPost(ctx, p.onReady)
	actors.OnPost(ctx, p.onWritten)
	actors.OnRequest(ctx, p.onStatus)
	p.reqTypes, p.initErr = map[reflect.Type]string{
		reflect.TypeFor[AdminRequest](): "raft", reflect.TypeFor[StatusRequest](): "raft"}, nil
	for _, m := range p.machines {
		m.sm.Register(&Router{ctx: ctx, p: p, m: m})
	}
	if p.initErr != nil {
		return p.initErr
	}
	actors.OnTimer(ctx, p.onTick)
	ctx.Every(p.cfg.TickInterval, tick{})
	p.kick(ctx)
	return nil
}

// Stop closes the data dir and fails what is pending with ErrStopped (a
// write never proposed: ErrNotApplied), in the order it was asked (as
// everything the protocol does, so that a simulation replays it).
func (p *Raft) Stop(*actors.Context) {
	for _, seq := range slices.Sorted(maps.Keys(p.pending)) {
		w := p.pending[seq]
		if w.term == 0 && !w.lost {
			p.writeDone(w, nil, fmt.Errorf("%w: the raft protocol stopped before it proposed the write", ErrNotApplied))
			continue
		}
		p.writeDone(w, nil, ErrStopped)
	}
	for _, r := range p.allReads() {
		p.readDone(r, 0, ErrStopped)
	}
	if p.admin != nil {
		p.adminDone(p.admin, ErrStopped)
	}
	p.pending, p.reads, p.waiting, p.unissued, p.unproposed, p.admin = nil, nil, nil, nil, nil, nil
	if p.w != nil {
		if p.lateHS != nil {
			p.w.push(&diskJob{msg: &pb.Message{}, hs: p.lateHS})
		}
		p.w.stop() // makes the queued writes (none acknowledged), so that close records their hard state
	}
	if p.disk != nil {
		if err := p.disk.close(); err != nil {
			p.log.Error().Err(err).Msg("closing the raft data dir")
		}
	}
}

func (p *Raft) allReads() []*pendingRead {
	out := slices.Clone(p.unissued)
	for _, seq := range slices.Sorted(maps.Keys(p.reads)) {
		out = append(out, p.reads[seq].reads...)
	}
	for _, b := range p.waiting {
		out = append(out, b.reads...)
	}
	return out
}

// kick makes sure a readyNow runs after the events already queued, so one
// Ready (one disk write, one message per peer) covers them all.
func (p *Raft) kick(ctx *actors.Context) {
	if p.readyQueued {
		return
	}
	p.readyQueued = true
	if err := ctx.Post(readyNow{}); err != nil {
		p.readyQueued = false
	}
}

func (p *Raft) onTick(ctx *actors.Context, _ tick) error {
	p.rn.Tick()
	p.ticks++
	p.expire(ctx.Now())
	p.settleHeld()
	p.tickMachines(ctx.Now())
	p.kick(ctx)
	return nil
}

// onBatch steps the raft messages a peer sent, each after check: a message
// that fails it, or that raft panics on all the same, is dropped, counted
// (Status.Dropped) and logged (rate-limited), and the rest of the batch is
// stepped.
func (p *Raft) onBatch(ctx *actors.Context, from actors.NodeName, b *messages.RaftBatch) error {
	for _, raw := range b.Messages {
		m := &pb.Message{}
		if err := proto.Unmarshal(raw, m); err != nil {
			p.drop(from, m, fmt.Errorf("does not decode: %v", err))
			continue
		}
		_ = p.stepFrom(from, m)
	}
	p.kick(ctx)
	return nil
}

// stepFrom checks and steps one raft message from node from; a message
// that fails the checks, or that raft panics on all the same, is dropped
// (and its reason returned).
func (p *Raft) stepFrom(from actors.NodeName, m *pb.Message) error {
	if err := p.checkSender(from, m); err != nil {
		p.drop(from, m, err)
		return err
	}
	if err := p.checkContent(m); err != nil && !p.staleTerm(m) {
		p.drop(from, m, err)
		return err
	}
	if m.GetFrom() == ID(from) {
		if _, ok := p.names[m.GetFrom()]; !ok {
			p.names[m.GetFrom()] = from
		}
		p.lastHeard[m.GetFrom()] = p.ticks
	}
	if err := p.step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) && !errors.Is(err, raft.ErrProposalDropped) {
		p.drop(from, m, err)
		return err
	}
	return nil
}

// staleTerm reports whether m is of an older term than this node's: raft
// ignores its content (it only answers, to From, with its own term).
func (p *Raft) staleTerm(m *pb.Message) bool {
	return m.GetTerm() != 0 && m.GetTerm() < p.rn.BasicStatus().GetTerm()
}

// step steps one remote message. A panic of raft's on it, for input check
// let through, drops the message rather than restart the protocol (raft
// panics before it changes its log for every case check knows).
func (p *Raft) step(m *pb.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("raft panicked on it: %v", r)
		}
	}()
	return p.rn.Step(m)
}

// drop counts and logs (rate-limited) a raft message this node refuses.
func (p *Raft) drop(from actors.NodeName, m *pb.Message, why error) {
	p.dropped++
	p.dropLog.Warn().Str("from", string(from)).Uint64("raft-from", m.GetFrom()).Uint64("raft-to", m.GetTo()).
		Stringer("type", m.GetType()).Uint64("term", m.GetTerm()).Uint64("dropped", p.dropped).Err(why).
		Msg("dropping a raft message")
}

// accept makes w (its command and its reply) a pending write, and queues
// it for the next Ready.
func (p *Raft) accept(ctx *actors.Context, w *pendingWrite) {
	p.seq++
	w.cmd.Origin, w.cmd.Epoch, w.cmd.Seq = p.id, p.epoch, p.seq
	w.deadline = ctx.Now().Add(p.cfg.RequestTimeout)
	p.pending[p.seq] = w
	p.queue(w)
	p.kick(ctx)
}

// writeDone answers a pending write's request: with res, or err when err
// is not nil.
func (p *Raft) writeDone(w *pendingWrite, res any, err error) {
	p.answered(w.answer(res, err))
}

// readDone answers a pending read's request: with its lookup at index, or
// err when err is not nil.
func (p *Raft) readDone(r *pendingRead, index uint64, err error) {
	p.answered(r.answer(index, err))
}

// tickMachines ticks every hosted machine that is a Ticker.
func (p *Raft) tickMachines(now time.Time) {
	leader := p.lead == p.id && p.lead != raft.None
	for _, m := range p.machines {
		if m.ticker != nil {
			m.ticker.Tick(now, leader, proposer{p, m})
		}
	}
}

// proposeNow proposes, on the leader, one command to machine that nobody
// waits for ([Proposer]).
func (p *Raft) proposeNow(machine string, data []byte) bool {
	st := p.rn.BasicStatus()
	if st.Lead != p.id || len(data) > MaxCommandSize {
		return false
	}
	p.seq++
	entry := &messages.RaftEntry{Format: dataFormat, Commands: []*messages.RaftCommand{
		{Machine: machine, Data: data, Origin: p.id, Epoch: p.epoch, Seq: p.seq, Term: st.GetTerm()}}}
	b, err := proto.Marshal(entry)
	if err != nil || p.rn.Propose(b) != nil {
		return false
	}
	p.proposals++
	return true
}

// adminDone answers the pending operator action: done when err is nil.
func (p *Raft) adminDone(a *pendingAdmin, err error) {
	if err != nil {
		p.answered(a.reply.Fail(err))
		return
	}
	p.answered(a.reply.Send(AdminResult{Action: a.req.Action, Node: a.req.Node}))
}

// answered logs a reply that could not be sent: answered twice, or after
// the incarnation ended — a bug of this protocol's.
func (p *Raft) answered(err error) {
	if err != nil {
		p.log.Error().Err(err).Msg("answering a request")
	}
}

// queue puts a pending write without a live copy in line to be proposed.
func (p *Raft) queue(w *pendingWrite) {
	w.term, w.queued = 0, true
	p.unproposed = append(p.unproposed, w)
}

// maxBatchBytes bounds the commands proposed as one entry: a quarter of an
// append message, so that an entry never crowds out the others.
// maxBatchWrites bounds their number: an entry of many tiny writes costs
// its apply (one pass over them in the mailbox) rather than its bytes.
const (
	maxBatchBytes  = 256 << 10
	maxBatchWrites = 1024
)

// proposeWrites proposes the writes queued since the last Ready: one
// entry for each run of them up to maxBatchBytes and maxBatchWrites (a
// single write as itself). Raft's per-entry costs — the proposal's step,
// the copy in its log, a slot in the append messages and the WAL — are
// paid per batch, not per write: at 64 concurrent clients this cut the CPU
// per replicated write by about a third (docs/consensus.md). It needs no
// timer: the writes that arrive while the mailbox handles other events go
// as one entry, and the entries proposed while the writer fsyncs go to
// disk together with one more fsync (writer.go).
//
// The writes wait in the queue while this node knows no leader, or has not
// heard from it within three heartbeats (a leader: from a majority), so
// that a write never leaves a node cut off from the group: it is proposed
// once a leader is reachable, or answered ErrNotApplied (settleHeld,
// expire). Each copy carries the term it is proposed in (the term fence).
func (p *Raft) proposeWrites() {
	if len(p.unproposed) == 0 {
		return
	}
	st := p.rn.BasicStatus()
	if st.Lead == raft.None || !p.leaderReachable(st.Lead) {
		return
	}
	queued := p.unproposed[:0]
	for _, w := range p.unproposed {
		if p.pending[w.cmd.Seq] == w && w.queued {
			queued = append(queued, w)
		}
	}
	for len(queued) > 0 {
		n, size := 1, cmdSize(queued[0].cmd) // at least one, however large
		for n < len(queued) && n < maxBatchWrites && size+cmdSize(queued[n].cmd) <= maxBatchBytes {
			size += cmdSize(queued[n].cmd)
			n++
		}
		ws := queued[:n]
		queued = queued[n:]
		for _, w := range ws {
			w.cmd.Term, w.queued = st.GetTerm(), false
		}
		entry := &messages.RaftEntry{Format: dataFormat, Commands: make([]*messages.RaftCommand, n)}
		for i, w := range ws {
			entry.Commands[i] = w.cmd
		}
		data, err := proto.Marshal(entry)
		if err == nil {
			err = p.rn.Propose(data)
		}
		if err != nil {
			for _, w := range ws {
				delete(p.pending, w.cmd.Seq)
				p.writeDone(w, nil, fmt.Errorf("%w: %v", ErrProposalDropped, err))
			}
			continue
		}
		for _, w := range ws {
			w.term = st.GetTerm()
		}
		p.proposals += uint64(n)
	}
	clear(p.unproposed)
	p.unproposed = p.unproposed[:0]
}

// cmdSize is the bytes a write adds to a batch, near enough.
func cmdSize(c *messages.RaftCommand) int { return len(c.Machine) + len(c.Data) }

// onReady handles every Ready raft has (AsyncStorageWrites): the
// messages to peers go at once; the write (MsgStorageAppend: entries, hard
// state, a snapshot from the leader) goes to the writer, whose report
// (onWritten) later sends or steps the responses raft attached to it;
// committed entries (MsgStorageApply) are applied here. So the mailbox
// keeps stepping proposals and acknowledgements while the disk writes: a
// leader sends its appends before its own write (Raft thesis §10.2.1) and
// counts its own copy only once it is on disk, and raft holds back
// every message that must follow the write (a vote, an append's
// acknowledgement) until then.
func (p *Raft) onReady(ctx *actors.Context, _ readyNow) error {
	p.readyQueued = false
	if len(p.unissued) > 0 && p.lead != raft.None {
		p.seq++
		rctx := make([]byte, 16)
		binary.BigEndian.PutUint64(rctx, p.epoch)
		binary.BigEndian.PutUint64(rctx[8:], p.seq)
		p.reads[p.seq] = &readIndexReq{reads: p.unissued, issued: ctx.Now()}
		p.unissued = nil
		p.rn.ReadIndex(rctx)
	}
	p.proposeWrites()
	for p.rn.HasReady() {
		rd := p.rn.Ready()
		if rd.SoftState != nil {
			p.leadership(ctx, rd.SoftState.Lead)
		}
		var toAppend, toApply *pb.Message
		out := rd.Messages[:0:0]
		for _, m := range rd.Messages {
			switch m.GetTo() {
			case raft.LocalAppendThread:
				toAppend = m
			case raft.LocalApplyThread:
				toApply = m
			default:
				out = append(out, m)
			}
		}
		snaps := p.send(ctx, out)
		if toAppend != nil {
			if len(out) > 0 {
				ctx.Flush() // the appends leave now, not after the write (inline) or the apply below
			}
			if !raft.IsEmptySnap(toAppend.Snapshot) {
				p.last = toAppend.Snapshot.GetMetadata().GetIndex()
			}
			if n := len(toAppend.Entries); n > 0 {
				p.last = toAppend.Entries[n-1].GetIndex()
			}
			p.pushWrite(appendJob(toAppend, rd.MustSync))
		}
		if toApply != nil {
			if err := p.apply(toApply.Entries); err != nil {
				return err
			}
			for _, r := range toApply.Responses {
				if err := p.rn.Step(r); err != nil {
					return fmt.Errorf("consensus: stepping %s: %w", r.GetType(), err)
				}
			}
		}
		for _, rs := range rd.ReadStates {
			p.readState(rs)
		}
		for _, s := range snaps {
			p.rn.ReportSnapshot(s.to, s.status)
		}
		if p.appliedTerm > p.decidedTerm {
			p.decidedTerm = p.appliedTerm
			p.requeueDead(ctx)
		}
		p.serveReads()
		if err := p.maybeSnapshot(); err != nil {
			return err
		}
	}
	return nil
}

// pushWrite hands a write to the writer, or holds it back (lateHS) when
// all it carries is a hard state that only moved the commit index and no
// response waits for it; a held-back hard state goes with the next write.
func (p *Raft) pushWrite(j *diskJob) {
	m := j.msg
	if j.hs != nil && len(m.Entries) == 0 && raft.IsEmptySnap(m.Snapshot) && len(m.Responses) == 0 &&
		j.hs.GetTerm() == p.hsTerm && j.hs.GetVote() == p.hsVote {
		p.lateHS = j.hs
		return
	}
	if j.hs == nil {
		j.hs = p.lateHS
	}
	p.lateHS = nil
	if j.hs != nil {
		p.hsTerm, p.hsVote = j.hs.GetTerm(), j.hs.GetVote()
	}
	p.w.push(j)
}

// onWritten takes a batch of finished writes from the writer, in order:
// it installs a snapshot from the leader in memory and in the store, hands
// the entries and hard state to raft's storage, then delivers the
// responses raft attached to each write (stepped when they are this
// node's, sent otherwise). A failed write restarts the protocol: the next
// incarnation reloads what is on disk.
func (p *Raft) onWritten(ctx *actors.Context, wr *written) error {
	if wr.w != p.w {
		return nil // an earlier incarnation's
	}
	if wr.err != nil {
		return wr.err // restart: the next incarnation reloads what is on disk; nothing of the batch is answered
	}
	for _, j := range wr.jobs {
		m := j.msg
		if m == nil {
			continue // a snapshot this node made
		}
		if !raft.IsEmptySnap(m.Snapshot) {
			if err := p.mem.ApplySnapshot(m.Snapshot); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
				return err
			}
			if err := p.restore(m.Snapshot); err != nil {
				return err
			}
			p.received++
			p.log.Info().Uint64("index", p.snapIndex).Int("keys", p.keys()).Msg("installed a snapshot from the leader")
		}
		if j.hs != nil {
			if err := p.mem.SetHardState(j.hs); err != nil {
				return err
			}
		}
		if err := p.mem.Append(m.Entries); err != nil {
			return err
		}
		var out []*pb.Message
		for _, r := range m.Responses {
			if r.GetTo() != p.id {
				out = append(out, r)
				continue
			}
			// Not found: this node left the configuration (a leader that
			// removed itself) while the write was made; raft no longer
			// tracks its own progress.
			if err := p.step(r); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
				return fmt.Errorf("consensus: stepping %s: %w", r.GetType(), err)
			}
		}
		for _, s := range p.send(ctx, out) {
			p.rn.ReportSnapshot(s.to, s.status)
		}
	}
	p.kick(ctx)
	return nil
}

type snapReport struct {
	to     uint64
	status raft.SnapshotStatus
}

// send batches the messages per peer, in order, one envelope each (split
// when one would grow past a quarter of the envelope limit), and streams
// snapshots (sendSnapshot). It returns the snapshots that failed at once,
// for raft's ReportSnapshot.
func (p *Raft) send(ctx *actors.Context, msgs []*pb.Message) []snapReport {
	var reports []snapReport
	var order []uint64
	batches := map[uint64][]*messages.RaftBatch{}
	sizes := map[uint64]int{}
	for _, m := range msgs {
		to := m.GetTo()
		if m.GetType() == pb.MessageType_MsgSnap {
			// Streamed (snapstream.go): ReportSnapshot runs when the
			// follower has it, or when the stream fails.
			if err := p.sendSnapshot(ctx, m); err != nil {
				p.log.Debug().Err(err).Uint64("to", to).Msg("raft snapshot not sent")
				p.rn.ReportUnreachable(to)
				reports = append(reports, snapReport{to, raft.SnapshotFailure})
			}
			continue
		}
		b, err := proto.Marshal(m)
		if err != nil {
			p.log.Error().Err(err).Msg("marshalling a raft message")
			continue
		}
		bs := batches[to]
		if bs == nil {
			order = append(order, to)
		}
		if len(bs) == 0 || sizes[to]+len(b) > 1<<20 {
			bs = append(bs, &messages.RaftBatch{})
			sizes[to] = 0
		}
		bs[len(bs)-1].Messages = append(bs[len(bs)-1].Messages, b)
		sizes[to] += len(b)
		batches[to] = bs
	}
	for _, to := range order {
		name, ok := p.names[to]
		var err error
		if !ok {
			err = fmt.Errorf("no node name known for raft id %x", to)
		}
		for _, b := range batches[to] {
			if err == nil {
				err = ctx.Send(name, b)
			}
		}
		if err != nil {
			p.log.Debug().Err(err).Str("to", string(name)).Msg("raft message not sent")
			p.rn.ReportUnreachable(to)
		}
	}
	return reports
}

// apply applies committed entries to the hosted machines and the
// configuration, and answers the writes this incarnation proposed.
func (p *Raft) apply(entries []*pb.Entry) error {
	for _, e := range entries {
		switch e.GetType() {
		case pb.EntryType_EntryNormal:
			if len(e.Data) > 0 {
				entry, err := decodeRaftEntry(e.GetIndex(), e.Data)
				if err != nil {
					return err
				}
				for _, c := range entry.Commands {
					if err := p.applyCommand(c, e.GetIndex(), e.GetTerm()); err != nil {
						return err
					}
				}
			}
		case pb.EntryType_EntryConfChange:
			cc := &pb.ConfChange{}
			if err := proto.Unmarshal(e.Data, cc); err != nil {
				return fmt.Errorf("%w: committed conf change %d does not decode: %v", ErrCorrupt, e.GetIndex(), err)
			}
			if name := actors.NodeName(cc.Context); name != "" && ID(name) == cc.GetNodeId() {
				p.names[cc.GetNodeId()] = name
			}
			p.confState = p.rn.ApplyConfChange(cc)
			p.snapNow = true
			p.log.Info().Stringer("type", cc.GetType()).Str("peer", string(p.names[cc.GetNodeId()])).
				Uints64("voters", p.confState.Voters).Uints64("learners", p.confState.Learners).Msg("configuration changed")
			if a := p.admin; a != nil && a.id == cc.GetNodeId() && a.ccType == cc.GetType() {
				p.admin = nil
				p.adminDone(a, nil)
			}
		case pb.EntryType_EntryConfChangeV2:
			cc := &pb.ConfChangeV2{}
			if err := proto.Unmarshal(e.Data, cc); err != nil {
				return fmt.Errorf("%w: committed conf change %d does not decode: %v", ErrCorrupt, e.GetIndex(), err)
			}
			p.confState = p.rn.ApplyConfChange(cc)
			p.snapNow = true
		}
		p.applied, p.appliedTerm = e.GetIndex(), e.GetTerm()
		p.appliedBytes += uint64(len(e.Data))
	}
	return nil
}

// applyCommand applies one command committed at index in an entry of term
// term, and answers its request when this incarnation proposed it.
//
// The term fence: a command proposed in one term (cmd.Term) and appended
// in another — a proposal that reached a later leader late, forwarded by a
// node that has since lost leadership — is skipped, on every node alike.
// So each copy of a write can apply only while its own term lasts, and
// once an entry of a later term applies, its proposer knows its copy never
// will (requeueDead) and may propose it again: a write applies once, never
// twice, without a table of applied (origin, epoch, seq) in the state.
//
// A command to a machine this node does not host stops the protocol (an
// error): applying the rest without it would leave this replica apart.
func (p *Raft) applyCommand(cmd *messages.RaftCommand, index, term uint64) error {
	m, ok := p.byName[cmd.Machine]
	if !ok {
		return fmt.Errorf("%w: raft log entry %d holds a command to machine %q, which this node does not host (Config.Machines: %v); every node of a group must host the same machines",
			ErrDataFormat, index, cmd.Machine, p.machineNames())
	}
	mine := cmd.Origin == p.id && cmd.Epoch == p.epoch
	if cmd.Term != term {
		p.fenced++
		if w, ok := p.pending[cmd.Seq]; mine && ok && w.term == cmd.Term && !w.lost {
			p.reproposed++
			p.queue(w) // this copy is dead, and it was the live one
		}
		return nil
	}
	res, err := m.sm.Apply(Command{Index: index, Term: term, Data: cmd.Data})
	if mine {
		if w, ok := p.pending[cmd.Seq]; ok {
			delete(p.pending, cmd.Seq)
			p.writeDone(w, res, err)
		}
	}
	return nil
}

// restore replaces the machines' state and the configuration with a
// snapshot's.
func (p *Raft) restore(s *pb.Snapshot) error {
	names, err := p.restoreMachines(s.GetMetadata().GetIndex(), s.Data)
	if err != nil {
		return err
	}
	maps.Copy(p.names, names)
	p.confState = s.GetMetadata().GetConfState()
	p.applied, p.appliedTerm = s.GetMetadata().GetIndex(), s.GetMetadata().GetTerm()
	p.decidedTerm = p.appliedTerm
	p.snapIndex = p.applied
	// A copy proposed before may be in the entries the snapshot replaced:
	// its outcome can no longer be told, and it is never proposed again.
	for _, w := range p.pending {
		if w.term != 0 {
			w.lost = true
		}
	}
	return nil
}

func (p *Raft) readState(rs raft.ReadState) {
	if len(rs.RequestCtx) != 16 || binary.BigEndian.Uint64(rs.RequestCtx) != p.epoch {
		return
	}
	seq := binary.BigEndian.Uint64(rs.RequestCtx[8:])
	r, ok := p.reads[seq]
	if !ok {
		return // duplicate, asked again, or timed out
	}
	delete(p.reads, seq)
	p.waiting = append(p.waiting, readBatch{index: rs.Index, reads: r.reads})
}

// serveReads answers the reads whose read index has been applied.
func (p *Raft) serveReads() {
	keep := p.waiting[:0]
	for _, b := range p.waiting {
		if b.index > p.applied {
			keep = append(keep, b)
			continue
		}
		for _, r := range b.reads {
			p.readDone(r, b.index, nil)
		}
	}
	clear(p.waiting[len(keep):])
	p.waiting = keep
}

// snapshotBytes: a snapshot is also taken after this many bytes of
// applied entries, since an entry may batch many writes.
const snapshotBytes = 64 << 20

// maybeSnapshot snapshots the hosted machines every SnapshotEntries applied entries
// (or snapshotBytes), and after a configuration change, and compacts the
// log behind it.
func (p *Raft) maybeSnapshot() error {
	if p.applied == p.snapIndex || (!p.snapNow && p.applied-p.snapIndex < p.cfg.SnapshotEntries && p.appliedBytes < snapshotBytes) {
		return nil
	}
	p.snapNow, p.appliedBytes = false, 0
	data, err := p.encodeSnapshot()
	if err != nil {
		return err
	}
	snap, err := p.mem.CreateSnapshot(p.applied, p.confState, data)
	if err != nil {
		if errors.Is(err, raft.ErrSnapOutOfDate) {
			return nil
		}
		return err
	}
	var compactTo uint64
	if p.applied > p.cfg.CatchUpEntries {
		compactTo = p.applied - p.cfg.CatchUpEntries
	}
	p.w.push(&diskJob{made: snap, compactTo: compactTo})
	if first, _ := p.mem.FirstIndex(); compactTo >= first {
		if err := p.mem.Compact(compactTo); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return err
		}
	}
	p.snapIndex = p.applied
	p.made++
	p.log.Debug().Uint64("index", p.applied).Uint64("compacted-to", compactTo).Int("bytes", len(data)).Msg("snapshot made")
	return nil
}

// leadership publishes LeadershipChanged when the leader changes, and
// settles a pending leadership transfer.
func (p *Raft) leadership(ctx *actors.Context, lead uint64) {
	term := p.rn.BasicStatus().GetTerm()
	if lead == p.lead && (lead == raft.None || term == p.term) {
		return
	}
	p.lead, p.term = lead, term
	if lead != raft.None && len(p.reads) > 0 {
		// Ask the new leader: the old one may have dropped the requests,
		// or be gone with them (reads are idempotent).
		for _, seq := range slices.Sorted(maps.Keys(p.reads)) {
			p.unissued = append(p.unissued, p.reads[seq].reads...)
		}
		clear(p.reads)
		p.kick(ctx)
	}
	name := p.names[lead]
	ctx.Notify(&LeadershipChanged{Leader: name, Term: term})
	if lead != raft.None {
		p.log.Info().Str("leader", string(name)).Uint64("term", term).Msg("leader elected")
	}
	if a := p.admin; a != nil && a.req.Action == TransferLeader && lead == a.id {
		p.admin = nil
		p.adminDone(a, nil)
	}
}

// expire fails requests older than RequestTimeout, oldest first.
func (p *Raft) expire(now time.Time) {
	var due []uint64
	for seq, w := range p.pending {
		if now.After(w.deadline) {
			due = append(due, seq)
		}
	}
	slices.Sort(due)
	for _, seq := range due {
		w := p.pending[seq]
		delete(p.pending, seq)
		if w.term == 0 && !w.lost {
			p.writeDone(w, nil, fmt.Errorf("%w: %s reached no leader within %v and proposed no copy of the write", ErrNotApplied, p.node, p.cfg.RequestTimeout))
			continue
		}
		p.writeDone(w, nil, ErrTimeout)
	}
	retry := 3 * time.Duration(p.cfg.HeartbeatTicks) * p.cfg.TickInterval
	due = due[:0]
	for seq, ri := range p.reads {
		if now.After(ri.reads[0].deadline) || now.Sub(ri.issued) > retry && p.lead != raft.None {
			due = append(due, seq)
		}
	}
	slices.Sort(due)
	for _, seq := range due {
		ri := p.reads[seq]
		switch {
		case now.After(ri.reads[0].deadline):
			delete(p.reads, seq)
			for _, r := range ri.reads {
				p.readDone(r, 0, ErrTimeout)
			}
		case now.Sub(ri.issued) > retry && p.lead != raft.None:
			delete(p.reads, seq)
			p.unissued = append(p.unissued, ri.reads...)
		}
	}
	keep := p.waiting[:0]
	for _, b := range p.waiting {
		if now.After(b.reads[0].deadline) {
			for _, r := range b.reads {
				p.readDone(r, 0, ErrTimeout)
			}
			continue
		}
		keep = append(keep, b)
	}
	clear(p.waiting[len(keep):])
	p.waiting = keep
	if a := p.admin; a != nil && now.After(a.deadline) {
		p.admin = nil
		p.adminDone(a, fmt.Errorf("%w: %s %s", ErrTimeout, a.req.Action, a.req.Node))
	} else if a != nil && a.req.Action == TransferLeader {
		// Raft abandons a transfer after an election timeout (the
		// transferee may not have applied its promotion yet when it got
		// MsgTimeoutNow); ask again while the request lives.
		if st := p.rn.BasicStatus(); st.RaftState == raft.StateLeader && st.LeadTransferee == raft.None {
			p.rn.TransferLeader(a.id)
		}
	}
}

func (p *Raft) onStatus(_ *actors.Context, _ StatusRequest) (Status, error) {
	st := p.rn.BasicStatus()
	s := Status{
		Node: p.node, ID: p.id, State: st.RaftState.String(), Leader: p.names[st.Lead], Term: st.GetTerm(),
		Commit: st.GetCommit(), Applied: p.applied, SnapshotIndex: p.snapIndex, Keys: p.keys(),
		SnapshotsMade: p.made, SnapshotsReceived: p.received, Proposals: p.proposals, Dropped: p.dropped,
		Fenced: p.fenced, Reproposed: p.reproposed,
	}
	reach, _ := p.reachability(p.reachWindow())
	s.Reachable = reach
	s.Holding = st.Lead != raft.None && !p.leaderReachable(st.Lead)
	if st.Lead == raft.None {
		var u *UnavailableError
		if errors.As(p.unavailableNow(), &u) {
			s.Reason = u.Code()
		}
	}
	for _, id := range p.confState.Voters {
		s.Voters = append(s.Voters, p.nameOf(id))
	}
	for _, id := range p.confState.Learners {
		s.Learners = append(s.Learners, p.nameOf(id))
	}
	slices.Sort(s.Voters)
	slices.Sort(s.Learners)
	if st.RaftState == raft.StateLeader {
		for id, pr := range p.rn.Status().Progress {
			if id == p.id {
				continue
			}
			f := Follower{Node: p.nameOf(id), Match: pr.Match, Next: pr.Next, State: pr.State.String(),
				Learner: pr.IsLearner, Active: pr.RecentActive}
			if s.Commit > pr.Match {
				f.Lag = s.Commit - pr.Match
			}
			s.Followers = append(s.Followers, f)
		}
		slices.SortFunc(s.Followers, func(a, b Follower) int { return cmp.Compare(a.Node, b.Node) })
	}
	return s, nil
}

// keys is the entries the hosted Sizers hold.
func (p *Raft) keys() int {
	n := 0
	for _, m := range p.machines {
		if s, ok := m.sm.(Sizer); ok {
			n += s.Len()
		}
	}
	return n
}

func (p *Raft) nameOf(id uint64) actors.NodeName {
	if n, ok := p.names[id]; ok {
		return n
	}
	return actors.NodeName(fmt.Sprintf("%x", id))
}

// onAdmin starts an operator action; only the leader performs them. The
// reply comes when the change is applied (the transfer observed); an error
// returned here answers it.
func (p *Raft) onAdmin(ctx *actors.Context, req AdminRequest, reply actors.Reply[AdminResult]) error {
	st := p.rn.BasicStatus()
	if st.RaftState != raft.StateLeader {
		return &NotLeaderError{Node: p.node, Leader: p.names[st.Lead]}
	}
	if p.admin != nil {
		return fmt.Errorf("%w: %s %s is still in progress; one change at a time", ErrProposalDropped, p.admin.req.Action, p.admin.req.Node)
	}
	if req.Node == "" {
		return fmt.Errorf("%w: %s needs a node name", ErrBadRequest, req.Action)
	}
	id := ID(req.Node)
	a := &pendingAdmin{req: req, reply: reply, id: id, deadline: ctx.Now().Add(p.cfg.RequestTimeout)}
	switch req.Action {
	case AddVoter:
		a.ccType = pb.ConfChangeType_ConfChangeAddNode
	case AddLearner:
		a.ccType = pb.ConfChangeType_ConfChangeAddLearnerNode
	case RemoveNode:
		a.ccType = pb.ConfChangeType_ConfChangeRemoveNode
	case TransferLeader:
		if !slices.Contains(p.confState.Voters, id) {
			return fmt.Errorf("%w: %s is not a voter; voters can lead", ErrBadRequest, req.Node)
		}
		if id == p.id {
			return reply.Send(AdminResult{Action: req.Action, Node: req.Node})
		}
		p.admin = a
		p.rn.TransferLeader(id)
		p.kick(ctx)
		return nil
	default:
		return fmt.Errorf("%w: action %d; valid: AddVoter, AddLearner, RemoveNode, TransferLeader", ErrBadRequest, req.Action)
	}
	p.names[id] = req.Node
	cc := &pb.ConfChange{Type: a.ccType.Enum(), NodeId: &id, Context: []byte(req.Node)}
	if err := p.rn.ProposeConfChange(cc); err != nil {
		return fmt.Errorf("%w: %v", ErrProposalDropped, err)
	}
	p.admin = a
	p.kick(ctx)
	return nil
}

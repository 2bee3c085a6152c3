package consensus

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/messages"
)

// StateMachine is a replicated state machine: the state a raft group keeps
// equal on every node by applying the same commands in the same order. A
// protocol author implements it and hosts it on the raft protocol through
// [Config].Machines; package kv (the key-value store) and package mutex
// (lease locks) are built this way, and examples/ledger in a few dozen
// lines.
//
// The raft protocol calls every method from its own handlers, one at a
// time: a StateMachine needs no lock, and must not block (no I/O, no
// waiting on another protocol).
//
// The contract:
//   - Apply is deterministic: the same commands applied in the same order
//     from the same state give the same state and results on every node.
//     No clock, no randomness, no map-order dependence in what it writes.
//     An error Apply returns is a result like any other (a refused
//     operation: the lock is held, the account would overdraw): it answers
//     the request and changes nothing — on every node alike.
//   - Each command a request proposed is applied at most once on each node,
//     and its request answered with Apply's result on the node that
//     proposed it (the term fence, docs/consensus.md).
//   - Snapshot returns the whole state; Restore(Snapshot()) on another
//     node must give the same state. Restore replaces the state (it is
//     called on a fresh machine at start, and on a running one when the
//     leader sends a snapshot).
type StateMachine interface {
	// Register registers the machine's request types on r: the requests
	// the raft protocol serves for it ([HandleCommand], [HandleLookup],
	// [HandleRequest], [HandleLocal]). It runs once per incarnation of the raft protocol,
	// in its Init.
	Register(r *Router)
	// Apply applies one committed command and returns its result (given
	// to the request that proposed it, when this node did).
	Apply(c Command) (any, error)
	// Snapshot encodes the whole state.
	Snapshot() ([]byte, error)
	// Restore replaces the state with a snapshot's.
	Restore(snapshot []byte) error
}

// Ticker is a StateMachine that acts on local time: the raft protocol calls
// Tick on every raft tick (Config.TickInterval). The state itself has no
// clock, so time-driven changes go through the log: a machine counts down on
// its own clock (Env.Now, from when it applied something) and the leader
// proposes the change (package mutex: every replica counts a lease down from
// the apply of its grant, and the leader proposes its expiry). Tick must not
// change the replicated state itself.
type Ticker interface {
	// Tick runs once per raft tick with the node's clock, whether this
	// node leads the group, and a way to propose commands to this machine
	// that nobody waits for.
	Tick(now time.Time, leader bool, p Proposer)
}

// Sizer is a StateMachine that reports how many entries it holds; the
// sum over the hosted machines is [Status].Keys.
type Sizer interface {
	Len() int
}

// Proposer proposes commands to one hosted machine, from [Ticker].Tick.
type Proposer interface {
	// Propose proposes cmd (the machine's own encoding, as Apply gets it)
	// when this node leads; it reports whether raft took the proposal. Its
	// outcome comes only through Apply: propose again later if it did not
	// apply (the entry may be lost with a leader change).
	Propose(cmd []byte) bool
}

// Command is one committed command, as [StateMachine].Apply gets it.
type Command struct {
	// Index is the raft log index of the entry that holds the command. The
	// commands that reached a node between two Readys are proposed as one
	// entry, so several commands may share an index; each index is greater
	// than every index applied before.
	Index uint64
	// Term is the raft term of that entry.
	Term uint64
	// Data is the command as the machine encoded it ([HandleCommand]'s
	// encode, or [Proposer].Propose).
	Data []byte
}

// Env is what a hosted machine gets from the raft protocol it runs on.
type Env struct {
	Node actors.NodeName
	// Log is the raft protocol's logger, with a "machine" field.
	Log zerolog.Logger
	// Now is the node's clock (ctx.Now: a simulation owns it). Only for
	// local countdowns: the replicated state must not depend on it.
	Now func() time.Time
	// ElectionTimeout is ElectionTicks × TickInterval: how long a leader
	// change may take, e.g. before proposing again.
	ElectionTimeout time.Duration
}

// Machine registers one state machine with the raft protocol
// ([Config].Machines).
type Machine struct {
	// Name names the machine in the log and the snapshot: every node of
	// the group must host the same machines under the same names, and a
	// name never changes for the life of the group's data. 1 to
	// MaxMachineName bytes of lowercase letters, digits, '-', '_' and '.'.
	Name string
	// New makes the machine, empty, for one incarnation of the raft
	// protocol (at start and after a supervised restart); the protocol
	// then restores it from the latest snapshot and applies the log.
	New func(env Env) StateMachine
}

// Limits of hosted machines.
const (
	// MaxMachineName is the longest Machine.Name, in bytes.
	MaxMachineName = 64
	// MaxCommandSize bounds one command's data, in bytes: an entry must
	// fit in one 4 MiB envelope with room to spare.
	MaxCommandSize = 2 << 20
)

// Router registers a hosted machine's requests on the raft protocol, in
// [StateMachine].Register.
type Router struct {
	ctx *actors.Context
	p   *Raft
	m   *hosted
}

// claim records that the machine serves requests of type Req; a type
// another machine (or the protocol) serves already fails the protocol's
// Init, naming both: each request type has one handler.
func claim[Req any](r *Router) bool {
	t := reflect.TypeFor[Req]()
	if other, ok := r.p.reqTypes[t]; ok {
		r.p.initErr = errors.Join(r.p.initErr, fmt.Errorf("%w: Machines: %q and %q both serve requests of type %v; each request type has one machine", ErrInvalidConfig, other, r.m.name, t))
		return false
	}
	r.p.reqTypes[t] = r.m.name
	return true
}

// Machine is the name of the machine being registered.
func (r *Router) Machine() string { return r.m.name }

// HandleCommand makes the raft protocol serve requests of type Req to
// this machine as commands: encode turns a request into the command's data
// (an error answers the request at once, not applied: wrap ErrBadRequest or
// an error of the machine's own); the command is proposed, and once
// committed and applied, the request is answered with Apply's result,
// which must be a Rep (or Apply's error). A request is answered ErrNotApplied
// (an *UnavailableError while no leader is known), ErrTimeout after
// Config.RequestTimeout, or ErrStopped, as docs/consensus.md tells.
func HandleCommand[Req actors.Asks[Rep], Rep any](r *Router, encode func(req Req) ([]byte, error)) {
	HandleRequest(r, func(req Req) ([]byte, bool, error) {
		data, err := encode(req)
		return data, false, err
	}, nil)
}

// HandleLookup makes the raft protocol serve requests of type Req to this
// machine as linearizable reads: check (nil for none) refuses a bad request
// at once; the request then waits behind a ReadIndex (the reads that reach
// a node between two Readys share one), and once this node has applied up
// to the read index, lookup runs on the local state with that index: its
// answer reflects every command acknowledged before the request arrived.
// lookup must not change the state.
func HandleLookup[Req actors.Asks[Rep], Rep any](r *Router, check func(req Req) error, lookup func(req Req, index uint64) (Rep, error)) {
	HandleRequest(r, func(req Req) ([]byte, bool, error) {
		if check != nil {
			if err := check(req); err != nil {
				return nil, false, err
			}
		}
		return nil, true, nil
	}, lookup)
}

// HandleRequest serves requests of type Req that are commands or lookups,
// one or the other per request (package kv's Request: a get or a write):
// route returns the command's data (as [HandleCommand]'s encode), or
// read=true for a lookup served by lookup (as [HandleLookup]'s), or an
// error that answers the request at once.
func HandleRequest[Req actors.Asks[Rep], Rep any](r *Router, route func(req Req) (cmd []byte, read bool, err error), lookup func(req Req, index uint64) (Rep, error)) {
	if !claim[Req](r) {
		return
	}
	p, m := r.p, r.m
	actors.OnRequestDeferred(r.ctx, func(ctx *actors.Context, req Req, reply actors.Reply[Rep]) error {
		data, read, err := route(req)
		if err != nil {
			return err
		}
		if read && lookup == nil {
			return fmt.Errorf("%w: machine %q serves no lookups", ErrBadRequest, m.name)
		}
		if len(data) > MaxCommandSize {
			return fmt.Errorf("%w: a command of %d bytes to machine %q; at most %d", ErrBadRequest, len(data), m.name, MaxCommandSize)
		}
		if err := p.unavailable(); err != nil {
			return err
		}
		if read {
			p.unissued = append(p.unissued, &pendingRead{
				deadline: ctx.Now().Add(p.cfg.RequestTimeout),
				answer: func(index uint64, err error) error {
					if err != nil {
						return reply.Fail(err)
					}
					rep, err := lookup(req, index)
					if err != nil {
						return reply.Fail(err)
					}
					return reply.Send(rep)
				},
			})
			p.kick(ctx)
			return nil
		}
		p.accept(ctx, &pendingWrite{
			cmd: &messages.RaftCommand{Machine: m.name, Data: data},
			answer: func(res any, err error) error {
				if err != nil {
					return reply.Fail(err)
				}
				rep, err := resultAs[Rep](m.name, res)
				if err != nil {
					return reply.Fail(err)
				}
				return reply.Send(rep)
			},
		})
		return nil
	})
}

// HandleLocal makes the raft protocol serve requests of type Req to this
// machine from the local replica at once, without a ReadIndex: not
// linearizable, the state as applied up to applied (which may trail the
// leader's commit). For operators' views (a browse of the keys); h must
// not change the state.
func HandleLocal[Req actors.Asks[Rep], Rep any](r *Router, h func(req Req, applied uint64) (Rep, error)) {
	if !claim[Req](r) {
		return
	}
	p := r.p
	actors.OnRequest(r.ctx, func(_ *actors.Context, req Req) (Rep, error) { return h(req, p.applied) })
}

// resultAs is Apply's result as the reply type of the request that
// proposed the command.
func resultAs[Rep any](machine string, res any) (Rep, error) {
	var zero Rep
	if res == nil {
		return zero, nil
	}
	rep, ok := res.(Rep)
	if !ok {
		return zero, fmt.Errorf("consensus: machine %q applied a command and returned a %T; its request is answered with a %T (a bug of the machine's)", machine, res, zero)
	}
	return rep, nil
}

// hosted is one machine the protocol runs.
type hosted struct {
	name   string
	sm     StateMachine
	ticker Ticker  // nil if it does not tick
	spec   Machine // to make a throwaway one (checkSnapshot)
	env    Env
}

// proposer proposes a hosted machine's commands from Tick.
type proposer struct {
	p *Raft
	m *hosted
}

func (x proposer) Propose(cmd []byte) bool { return x.p.proposeNow(x.m.name, cmd) }

// checkMachineName refuses a name that cannot name a machine.
func checkMachineName(name string) error {
	const valid = "1 to %d bytes of lowercase letters, digits, '-', '_' and '.'"
	if name == "" || len(name) > MaxMachineName {
		return fmt.Errorf("machine name %q: a name is "+valid, name, MaxMachineName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("machine name %q has %q at byte %d: a name is "+valid, name, c, i, MaxMachineName)
		}
	}
	return nil
}

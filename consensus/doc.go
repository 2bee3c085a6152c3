// Package consensus runs Raft (go.etcd.io/raft/v3) as a Troupe protocol
// and replicates the state machines it hosts with it ([StateMachine]): a
// protocol author's own, package kv's key-value store, package mutex's
// lease locks, side by side in one log ([Config].Machines).
//
// One protocol, [Name] ("raft"), holds a raft.RawNode. Its handlers
// drive it: a periodic timer ticks it, messages from peers (a
// messages.RaftBatch per peer and Ready) are stepped into it, and one
// handler processes each Ready following raft's contract for
// asynchronous storage writes: send the messages to peers, hand the write
// (snapshot, entries, hard state) to the protocol's writer goroutine,
// which fsyncs batches of them off the mailbox and posts them back before
// the responses raft attached to them are delivered, and apply the
// committed entries (writer.go). Pre-vote and check-quorum are on. The
// hosted machines are snapshotted every Config.SnapshotEntries entries and
// the log compacted behind it; a node that is too far behind, or new, gets
// the snapshot.
//
// # State machines
//
// A [StateMachine] applies committed commands deterministically, in log
// order, each with its index ([Command]); snapshots and restores its whole
// state; and registers the typed requests the raft protocol serves for it
// on a [Router]: [HandleCommand] (a write, answered with Apply's result
// once applied, exactly once: the term fence below), [HandleLookup] (a
// linearizable read, served after a ReadIndex that the reads between two
// Readys share), [HandleRequest] (either, per request), [HandleLocal] (the
// local replica, now). A machine with local time implements [Ticker]: every
// replica counts down on its own clock, and the leader proposes the change
// through a [Proposer] (package mutex's lease expiry). Every command and
// snapshot section is tagged with its machine's name (messages.RaftEntry,
// messages.RaftSnapshot, format 2); a data dir of an earlier format is
// refused with [ErrDataFormat]. docs/consensus.md, "Replicating your own
// state machine", has the guarantees; examples/ledger a machine in a few
// dozen lines; package consensustest starts a group for tests in one call.
//
// etcd raft trusts what it steps and panics on some of it, so a message
// from a peer is checked first: its From must be the node that sent it (or,
// for the proposals and read-index requests a follower forwards, any
// member), a member of the configuration, and its content what raft can
// step — no commit past the log, no entries that rewrite committed ones, a
// snapshot that restores, an acknowledgement of entries the leader has. A
// message that fails, or that raft panics on all the same, is dropped,
// counted ([Status].Dropped) and logged, rate-limited (inbound.go).
//
// Raft ids are node names hashed ([ID]): the same on every node, stable
// across restarts. The log lives in an append-only write-ahead log,
// DataDir/<node>/wal-<base>/ (github.com/tidwall/wal), the hard state and
// the snapshot in DataDir/<node>/raft.db (bbolt); each record is under a
// CRC-32C checked at start ([ErrCorrupt]). The commands that reach a node
// between two Readys are proposed as one entry.
//
// Every copy of a write carries the term it was proposed in and applies only
// from an entry of that term (the term fence), so a node that sees a later
// term applied knows its copy never will and proposes the write again to the
// new leader: a leader change loses no forwarded write, and none applies
// twice. An error that wraps [ErrNotApplied] means nothing was written;
// [ErrNoQuorum] and [ErrNoLeader] come as an [UnavailableError] naming the
// voters this node reaches (a raft message within four election timeouts);
// [ErrTimeout] means the outcome is unknown (docs/consensus.md).
//
// A data dir's raft state is made once and must then be there whole: the
// first start, in a dir that holds none of it, makes raft.db with a
// creation record, raft.db.created beside it, and the log; a later start
// that finds raft.db deleted, empty or replaced, or the log it names
// deleted, refuses with [ErrMissingState] rather than start with no vote
// (package internal/durable keeps the rule). [Config].ForceNewState,
// applied by the protocol's start ([PrepareDataDir]), starts such a node
// over as a new member, to be removed from the group before and added back
// after.
//
// # Usage
//
//	cfg := consensus.DefaultConfig()
//	cfg.DataDir, cfg.Peers = "/var/lib/troupe", []string{"node-1", "node-2", "node-3"}
//	cfg.Machines = []consensus.Machine{kv.DefaultMachine(), mutex.LockMachine(), myMachine}
//	f, err := consensus.New(cfg)              // cfg.Validate's error, if any
//	node.Start(f)                             // on every node of the group
//	kc, _ := kv.NewClient(node)               // package kv's client
//	kc.Put(ctx, "k", []byte("v"))             // any node: raft forwards to the leader
//	c, _ := consensus.NewClient(node)
//	c.Admin(ctx, consensus.AddVoter, "node-4") // on the leader
//	st, _ := c.Status(ctx)
//
// From another protocol, send the raft protocol a request a hosted machine
// registered (kv.Request, mutex.LockRequest, your own) or an
// [AdminRequest] or [StatusRequest] with actors.Request: the reply comes
// back as an event when the command is applied or the read served;
// subscribe to [LeadershipChanged]. From outside the protocols, [Call]
// does the same, blocking. Wait a little longer than
// Config.RequestTimeout: the protocol answers by then, and its answer
// tells a write that was not applied (ErrNotApplied) from one whose
// outcome is unknown (ErrTimeout). [HTTPHandler] serves /v1/raft.
//
// # Concurrency
//
// The protocol's state is touched only by its handlers, which answer the
// requests they keep (actors.OnRequestDeferred) from later events: a
// commit, a read index, a tick's timeout, the protocol's Stop; the hosted
// machines run on those handlers too, one call at a time. [Client] is safe
// for concurrent use.
//
// # Testing
//
// The tests run groups on the sim network with loss, duplication,
// reordering, partitions and crash-restarts from the data dirs, and check
// the histories of concurrent clients with porcupine (linearizability).
// docs/consensus.md has the design, the decisions and the measurements.
package consensus

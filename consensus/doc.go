// Package consensus runs Raft (go.etcd.io/raft/v3) as a Troupe protocol
// and replicates a key-value store with it.
//
// One protocol, [Name] ("raft"), holds a raft.RawNode. Its handlers
// drive it: a periodic timer ticks it, messages from peers (a
// messages.RaftBatch per peer and Ready) are stepped into it, and one
// handler processes each Ready following raft's contract: persist the
// snapshot, entries and hard state (fsync) → send the messages → apply the
// committed entries → Advance. Pre-vote and check-quorum are on. The store
// is snapshotted every Config.SnapshotEntries writes and the log compacted
// behind it; a node that is too far behind, or new, gets the snapshot.
//
// Beside the keys, the state machine holds lease locks ([LockRequest]): a
// lock is granted by a committed entry whose log index is its fencing
// token, lasts a TTL unless refreshed, and expires by an entry the leader
// proposes when its countdown ends (package mutex has the client and the
// HTTP API; docs/mutex.md the design).
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
// CRC-32C checked at start ([ErrCorrupt]). The writes that reach a node
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
//	f, err := consensus.New(cfg)              // cfg.Validate's error, if any
//	node.Start(f)                             // on every node of the group
//	kv, _ := consensus.NewKV(node)
//	kv.Put(ctx, "k", []byte("v"))             // any node: raft forwards to the leader
//	v, found, err := kv.Get(ctx, "k")         // linearizable (ReadIndex)
//	swapped, cur, found, err := kv.CAS(ctx, "k", []byte("v"), []byte("w"))
//	kv.Admin(ctx, consensus.AddVoter, "node-4") // on the leader
//
// From another protocol, send the raft protocol a [Request] (or a
// [LockRequest], [AdminRequest], [StatusRequest]) with actors.Request: the
// reply comes back as an event when the write is applied or the read
// served; subscribe to [LeadershipChanged]. From outside the protocols,
// actors.Call does the same, blocking; [KV] wraps it. Wait a little longer
// than Config.RequestTimeout: the protocol answers by then, and its answer
// tells a write that was not applied (ErrNotApplied) from one whose
// outcome is unknown (ErrTimeout). [HTTPHandler] serves /v1/kv/{key}.
//
// # Concurrency
//
// The protocol's state is touched only by its handlers, which answer the
// requests they keep (actors.OnRequestDeferred) from later events: a
// commit, a read index, a tick's timeout, the protocol's Stop. [KV] is
// safe for concurrent use.
//
// # Testing
//
// The tests run groups on the sim network with loss, duplication,
// reordering, partitions and crash-restarts from the data dirs, and check
// the histories of concurrent clients with porcupine (linearizability).
// docs/consensus.md has the design, the decisions and the measurements.
package consensus

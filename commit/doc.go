// Package commit is two-phase commit as a Troupe protocol: a transaction
// changes [Resource]s on several nodes, and commits on all of them or on
// none, through crashes of any node at any step.
//
// One protocol, [Name] ("commit"), runs on every node in two
// roles. As coordinator of a [Transaction] submitted to it, it sends each
// participant its op in a Prepare, collects the votes, decides (commit if
// every vote is yes, abort on a no or after Config.VoteTimeout), records
// the decision, tells the participants until each acknowledges, then
// forgets. As participant, it has its Resource prepare the op (off the
// mailbox, on a goroutine the protocol owns), logs a yes vote before
// sending it, applies the decision, and logs the end before acknowledging.
// A participant whose Resource takes longer than Config.PrepareTimeout
// aborts its part and votes no. Messages are sent best effort and
// retransmitted until answered (Prepare until a vote, Decision until an
// ack, a Query while in doubt), so loss, duplication and reordering cost
// time, never atomicity.
//
// Each node keeps a log in DataDir/<node>/commit.db (bbolt, a CRC-32C per
// record, fsync on every write): the coordinator's commits, the
// participant's yes votes and ends. At start the protocol recovers from
// it: a coordinator tells again the decisions not yet acknowledged; a
// participant that voted yes and has no decision is in doubt and asks; a
// transaction the coordinator has no record of aborts (presumed abort);
// a part the Resource prepared but the log has no vote for is aborted.
// A log that was made and is missing or empty now (commit.db deleted or
// truncated; commit.db.created beside it records that it was made) stops
// the protocol with [ErrMissingState] instead of starting a new one: the
// node would have forgotten its votes. To start an empty log anyway, once
// the node's transactions are settled on the other nodes, move
// commit.db.created away (package internal/durable keeps this rule).
//
// Two [Mode]s say where decisions live. [Textbook]: in the coordinator's
// log only; an in-doubt participant waits for the coordinator, however
// long it is down. [Consensus]: in the consensus group (package consensus,
// running on every node) under [DecisionKey], which the coordinator sets
// to "pending" before any Prepare and to "commit" or "abort" by
// compare-and-set; an in-doubt participant reads it, and after
// Config.AbandonAfter turns "pending" into "abort" itself. Exactly one of
// the two compare-and-sets wins, so a crashed coordinator blocks nobody.
//
// # Usage
//
//	cfg := commit.DefaultConfig()
//	cfg.DataDir = "/var/lib/troupe"
//	cfg.Resource = func(node actors.NodeName) (commit.Resource, error) { return openLedger(node) }
//	cfg.Mode = commit.Consensus               // after starting consensus.New's protocol; or commit.Textbook
//	f, err := commit.New(cfg)                 // cfg.Validate's error, if any
//	node.Start(f)                             // on every node
//
//	out, err := commit.Do(ctx, node, commit.Transaction{Parts: []commit.Part{
//		{Node: "node-2", Op: debit}, {Node: "node-3", Op: credit},
//	}})
//	// out.Committed, out.Reason ("node-2 voted no: ..."), out.ID
//
// [Submit], [StatusRequest] and [StatsRequest] are requests: actors.Call
// from outside the protocols ([Do] calls Submit and files a timeout
// under ErrTimeout), actors.Request from another protocol, whose reply comes as an
// event once the transaction is decided.
// examples/bank is a complete Resource: per-node ledgers and transfers.
//
// # Concurrency
//
// The protocol's state is touched only by its handlers. Resource methods
// run one at a time, in order, on one goroutine the protocol owns, which
// Stop waits for; they must not wait for another transaction. A Submit is
// answered when its transaction is decided, or with ErrStopped by Stop.
// [Do] is safe for concurrent use.
//
// # Testing
//
// The tests run clusters on the sim network with bank ledgers as the
// resource and crash the coordinator and each participant at every step of
// the protocol (a fault-injection hook halts the protocol there; the node
// is crashed and restarted from its data dir), in both modes, and check
// that every transfer ends committed at every participant or at none and
// that the bank's total never changes; `-commit.sweep` adds the
// coordinator-as-participant layout and a lossy, duplicating, reordering
// network. Other tests count the messages per transaction, time out votes
// and Prepares, and refuse bad input. docs/commit.md has the design, the
// decisions and the measurements.
package commit

package commit

import "errors"

// Errors of the commit package. Each is wrapped with detail; test with
// [errors.Is].
var (
	// ErrInvalidConfig: a Config field missing or out of range.
	ErrInvalidConfig = errors.New("commit: invalid configuration")
	// ErrInvalidTransaction: a transaction refused before anything
	// happened (no participants, a participant named twice or not at all,
	// too many participants, an op too large).
	ErrInvalidTransaction = errors.New("commit: invalid transaction")
	// ErrUnknownNode: a transaction names a node that is not in
	// Config.Nodes, or that the network does not know.
	ErrUnknownNode = errors.New("commit: unknown node")
	// ErrStopped: the coordinator stopped (or crashed) before it learnt
	// the outcome. The transaction may still commit (a decision already
	// recorded is carried out by recovery) or abort; ask a participant
	// ([StatusRequest]) later.
	ErrStopped = errors.New("commit: coordinator stopped before the outcome was known")
	// ErrTimeout: the wait for the outcome ended (the caller's deadline,
	// or the node's RequestTimeout) before it was known; the transaction
	// goes on and may commit or abort.
	ErrTimeout = errors.New("commit: no outcome before the deadline; the transaction may still commit or abort")
	// ErrCorrupt: the commit log fails its checksum or does not decode;
	// the protocol refuses to start from it.
	ErrCorrupt = errors.New("commit: corrupted commit log")
	// ErrMissingState: the commit log was made in the data dir and is
	// missing or empty there now (commit.db deleted or truncated); the
	// protocol refuses to start rather than forget its votes and decisions.
	ErrMissingState = errors.New("commit: commit log missing from the data dir")
	// ErrNoConsensus: Consensus mode needs the consensus protocol
	// (package consensus) on the node, and it does not run.
	ErrNoConsensus = errors.New("commit: consensus mode needs the raft protocol on this node")
)

package consensus

import (
	"errors"
	"fmt"
)

// Errors of the consensus package. Each is wrapped with detail; test with
// [errors.Is]. "Not applied" errors mean the write certainly did not
// happen; ErrTimeout and ErrStopped mean it may or may not have.
var (
	// ErrInvalidConfig: a Config field missing or out of range.
	ErrInvalidConfig = errors.New("consensus: invalid configuration")
	// ErrNoLeader: the group has no leader (an election is running); the
	// request was not applied. Retry after an election timeout.
	ErrNoLeader = errors.New("consensus: no leader (election in progress); not applied, retry")
	// ErrProposalDropped: raft refused the proposal (leadership transfer in
	// progress, too many uncommitted bytes, or no leader); not applied.
	ErrProposalDropped = errors.New("consensus: proposal dropped by raft; not applied, retry")
	// ErrNotLeader: an operation that only the leader performs was sent to
	// another node; see the NotLeaderError for the leader's name.
	ErrNotLeader = errors.New("consensus: not the leader")
	// ErrTimeout: no outcome within the request timeout. The write may
	// still be applied later.
	ErrTimeout = errors.New("consensus: request timed out; it may or may not have been applied")
	// ErrStopped: the raft protocol stopped or restarted while the request
	// was pending. The write may or may not have been applied.
	ErrStopped = errors.New("consensus: raft protocol stopped; the request may or may not have been applied")
	// ErrInvalidKey: a key that is empty, too long, not UTF-8 or holds
	// control characters.
	ErrInvalidKey = errors.New("consensus: invalid key")
	// ErrValueTooLarge: a value over Config.MaxValueSize.
	ErrValueTooLarge = errors.New("consensus: value too large")
	// ErrCorrupt: the data dir holds a log or snapshot that fails its
	// checksum or is inconsistent; the node refuses to start from it.
	ErrCorrupt = errors.New("consensus: corrupted raft storage")
	// ErrMissingState: a file the data dir's raft state needs is missing or
	// empty (raft.db deleted or truncated, the log deleted while raft.db
	// names it); the node refuses to start rather than forget its votes and
	// entries. Config.ForceNewState starts it over as a new member that must
	// be removed and added back (docs/operations.md, Backups).
	ErrMissingState = errors.New("consensus: raft state missing from the data dir")
	// ErrBadRequest: a malformed request (unknown operation, missing field).
	ErrBadRequest = errors.New("consensus: bad request")
)

// NotLeaderError is ErrNotLeader with the leader this node knows of ("" if
// none).
type NotLeaderError struct {
	Node, Leader string
}

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return fmt.Sprintf("consensus: %s is not the leader and knows of none (election in progress)", e.Node)
	}
	return fmt.Sprintf("consensus: %s is not the leader; the leader is %s", e.Node, e.Leader)
}

// Is makes errors.Is(err, ErrNotLeader) hold.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

package consensus

import (
	"errors"
	"fmt"
	"strings"

	"github.com/troupe-dev/troupe/actors"
)

// Errors of the consensus package. Each is wrapped with detail; test with
// [errors.Is]. Errors that wrap ErrNotApplied mean the write certainly did
// not happen and is safe to retry; ErrTimeout and ErrStopped mean it may or
// may not have.
var (
	// ErrInvalidConfig: a Config field missing or out of range.
	ErrInvalidConfig = errors.New("consensus: invalid configuration")
	// ErrNotApplied: the request was refused before it was proposed, or
	// every copy of it that was proposed can no longer apply; nothing was
	// written, and a retry is safe. ErrNoQuorum, ErrNoLeader and
	// ErrProposalDropped wrap it.
	ErrNotApplied = errors.New("consensus: not applied")
	// ErrNoLeader: this node knows no leader; not applied. Alone, an
	// election is running (this node reaches a majority of the voters):
	// retry after an election timeout. See [UnavailableError].
	ErrNoLeader = fmt.Errorf("%w: no leader", ErrNotApplied)
	// ErrNoQuorum: this node knows no leader and reaches fewer than a
	// majority of the voters (see [UnavailableError] for which), so none
	// can be elected on its side; not applied. A retry on this node cannot
	// succeed until enough voters are back; a node on the majority's side
	// may serve it. It wraps ErrNoLeader.
	ErrNoQuorum = fmt.Errorf("%w: fewer than a majority of the voters reachable", ErrNoLeader)
	// ErrProposalDropped: raft refused the proposal (leadership transfer in
	// progress, too many uncommitted bytes, or no leader); not applied.
	ErrProposalDropped = fmt.Errorf("%w: proposal dropped by raft", ErrNotApplied)
	// ErrNotLeader: an operation that only the leader performs was sent to
	// another node; see the NotLeaderError for the leader's name.
	ErrNotLeader = errors.New("consensus: not the leader")
	// ErrTimeout: no outcome within the request timeout, for a write that
	// was proposed: it may or may not have been applied (and may still be).
	// A read that times out changed nothing.
	ErrTimeout = errors.New("consensus: request timed out; it may or may not have been applied")
	// ErrStopped: the raft protocol stopped or restarted while the request
	// was pending. The write may or may not have been applied.
	ErrStopped = errors.New("consensus: raft protocol stopped; the request may or may not have been applied")
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
	Node, Leader actors.NodeName
}

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return fmt.Sprintf("consensus: %s is not the leader and knows of none (election in progress)", e.Node)
	}
	return fmt.Sprintf("consensus: %s is not the leader; the leader is %s", e.Node, e.Leader)
}

// Is makes errors.Is(err, ErrNotLeader) hold.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// UnavailableError is ErrNoQuorum or ErrNoLeader with this node's view of
// the voters: the ones it heard from recently (any raft message within
// four election timeouts, itself included) out of all of them.
type UnavailableError struct {
	Node      actors.NodeName
	Cause     error             // ErrNoQuorum or ErrNoLeader
	Reachable []actors.NodeName // voters this node heard from recently, itself included; sorted
	Voters    []actors.NodeName // every voter of the configuration; sorted
}

func (e *UnavailableError) Error() string {
	if errors.Is(e.Cause, ErrNoQuorum) {
		return fmt.Sprintf("consensus: not applied: no quorum: %s reaches %d of %d voters (%s), a majority is %d; nothing can be written or read until more are back",
			e.Node, len(e.Reachable), len(e.Voters), joinNames(e.Reachable), len(e.Voters)/2+1)
	}
	return fmt.Sprintf("consensus: not applied: no leader (an election is running; %s reaches %d of %d voters); retry in a moment",
		e.Node, len(e.Reachable), len(e.Voters))
}

// Unwrap makes errors.Is(err, e.Cause) and errors.Is(err, ErrNotApplied) hold.
func (e *UnavailableError) Unwrap() error { return e.Cause }

// Code is "no_quorum" or "election", as the HTTP API answers it.
func (e *UnavailableError) Code() string {
	if errors.Is(e.Cause, ErrNoQuorum) {
		return "no_quorum"
	}
	return "election"
}

// joinNames lists node names for an error message.
func joinNames(names []actors.NodeName) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

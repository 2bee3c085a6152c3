package commit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/troupe-dev/troupe/actors"
)

// Name is the name the commit protocol runs under on every node.
const Name actors.ProtocolName = "commit"

// Part is one participant's share of a transaction: a node and the op its
// Resource prepares and commits.
type Part struct {
	Node actors.NodeName
	Op   []byte
}

// Transaction is what a coordinator commits atomically: every Part
// commits, or none does. Each node appears in at most one Part; the
// coordinator may be one of them.
type Transaction struct {
	Parts []Part
}

// Outcome is how a transaction ended.
type Outcome struct {
	ID        string // "<coordinator>.<generation>.<seq>"
	Committed bool
	// Reason says why an aborted transaction aborted ("node-2 voted no:
	// ...", "no vote from node-3 within 1s").
	Reason string
}

// Submit asks a node's commit protocol to coordinate a transaction: a
// request (actors.Call from outside the protocols, which [Do] wraps;
// actors.Request from a protocol). The reply is the [Outcome] once it is
// decided (before the participants have applied it). An error means the
// transaction was refused (ErrInvalidTransaction, ErrUnknownNode: nothing
// happened, except that an unknown node found on sending aborts the
// transaction, whose id the error names) or that the outcome is unknown
// (ErrStopped: the coordinator stopped or crashed; actors.ErrTimeout: the
// requester's timeout ran out first, and the transaction goes on). Tx is
// shared, not copied: do not change it (or its ops) afterwards.
type Submit struct {
	actors.Returns[Outcome]
	Tx Transaction
}

// Do submits tx to node's commit protocol and waits for the outcome, until
// ctx's deadline or the node's RequestTimeout (actors.Config), whichever
// comes first; when the wait ends first the error wraps ErrTimeout.
func Do(ctx context.Context, node *actors.Node, tx Transaction) (Outcome, error) {
	out, err := actors.Call(ctx, node, Name, Submit{Tx: tx})
	if errors.Is(err, actors.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return Outcome{}, fmt.Errorf("%w: coordinator %s: %w", ErrTimeout, node.Name(), err)
	}
	return out, err
}

// State is a transaction's state on one node, in one role.
type State string

// States. A coordinator's transaction is Preparing (collecting votes), then
// Deciding (recording the decision in the consensus group), then Committed
// or Aborted until every participant acknowledged; then it is forgotten.
// A participant's part is Preparing (its Resource preparing), InDoubt
// (voted yes, no decision yet), then Committed or Aborted once applied; an
// ended part is remembered for Config.RetainEnded transactions.
const (
	Unknown   State = ""
	Preparing State = "preparing"
	Deciding  State = "deciding"
	InDoubt   State = "in-doubt"
	Committed State = "committed"
	Aborted   State = "aborted"
)

// StatusRequest asks a node's commit protocol (a request: actors.Call or
// actors.Request) for a transaction's [TxStatus].
type StatusRequest struct {
	actors.Returns[TxStatus]
	ID string
}

// TxStatus is a transaction as one node knows it.
type TxStatus struct {
	ID          string
	Coordinator State // Unknown when this node does not coordinate it (or has forgotten it)
	Participant State // Unknown when this node has no part in it (or has forgotten it)
}

// StatsRequest asks a node's commit protocol (a request) for its [Stats].
type StatsRequest struct{ actors.Returns[Stats] }

// Stats counts one node's work in both roles. Counters are of this
// incarnation; gauges are now.
type Stats struct {
	Coordinating int // gauge: transactions this node coordinates (not yet forgotten)
	Preparing    int // gauge: parts whose Resource is preparing
	InDoubt      int // gauge: parts that voted yes and wait for the decision

	Committed, Aborted           uint64 // decisions made as coordinator
	PartsCommitted, PartsAborted uint64 // parts applied as participant
	// UnilateralAborts: parts aborted before voting (PrepareTimeout, or an
	// abort decision that overtook the Prepare).
	UnilateralAborts uint64
	// FromConsensus: in-doubt parts that learnt the decision from the
	// consensus group; Abandoned: of those, transactions this participant
	// aborted through the group after AbandonAfter.
	FromConsensus, Abandoned uint64
	// Resent counts retransmissions (Prepare, Decision, Query).
	Resent uint64
	// Recovered counts the log records found at start: transactions to
	// finish as coordinator, parts in doubt as participant.
	RecoveredCoordinator, RecoveredInDoubt int
}

// txID is a parsed transaction id.
type txID struct {
	coordinator actors.NodeName
	gen, seq    uint64
}

func (t txID) String() string { return fmt.Sprintf("%s.%d.%d", t.coordinator, t.gen, t.seq) }

// parseID splits "<coordinator>.<generation>.<seq>".
func parseID(id string) (txID, bool) {
	j := strings.LastIndexByte(id, '.')
	if j <= 0 {
		return txID{}, false
	}
	i := strings.LastIndexByte(id[:j], '.')
	if i <= 0 {
		return txID{}, false
	}
	gen, err1 := strconv.ParseUint(id[i+1:j], 10, 64)
	seq, err2 := strconv.ParseUint(id[j+1:], 10, 64)
	if err1 != nil || err2 != nil {
		return txID{}, false
	}
	return txID{coordinator: actors.NodeName(id[:i]), gen: gen, seq: seq}, true
}

// CoordinatorOf is the coordinator named in a transaction id ("" if the id
// is not one).
func CoordinatorOf(id string) actors.NodeName {
	t, _ := parseID(id)
	return t.coordinator
}

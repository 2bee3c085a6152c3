package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/troupe-dev/troupe/actors"
)

// Name is the name the jobs protocol runs under on every node.
const Name actors.ProtocolName = "jobs"

// State is a job's state at its contact node.
type State string

// The states of a job. Pending: waiting for the leader to split it;
// running: split, parts under way; then one of the three ends.
const (
	Pending   State = "pending"
	Running   State = "running"
	Succeeded State = "succeeded"
	Failed    State = "failed"
	Cancelled State = "cancelled"
)

// Ended reports whether s is a final state.
func (s State) Ended() bool { return s == Succeeded || s == Failed || s == Cancelled }

// Submit is a local request to the jobs protocol: run a job, with this node
// as its contact. The reply is a [Submitted]; errors (ErrInvalidJob,
// ErrUnknownRuntime, ErrRuntimeDisabled) mean the job was refused.
type Submit struct {
	actors.Returns[Submitted]
	Runtime string          `json:"runtime"` // "" means "starlark"
	Script  string          `json:"script"`
	Input   json.RawMessage `json:"input"`
	Parts   int             `json:"parts"` // n for split(input, n); 0: PartsPerMember per live member
	// Name is the script's file name as the user knows it ("cpu.star"):
	// errors name it instead of job.star. At most MaxNameBytes of UTF-8,
	// without control characters; "" keeps job.star.
	Name string `json:"name,omitempty"`
}

// Submitted answers a Submit.
type Submitted struct {
	ID string `json:"id"`
}

// Status is a job as its contact knows it.
type Status struct {
	ID         string          `json:"id"`
	State      State           `json:"state"`
	PartsTotal int             `json:"parts_total"`
	PartsDone  int             `json:"parts_done"`
	Result     json.RawMessage `json:"result"`
	// Error is why the job failed or was cancelled, on one line: the
	// phase ("load", "split", "run part 7 on node-3", "merge"), the
	// script's file and line, the message and, for a limit, the key or
	// flag that raises it.
	Error string `json:"error"`
	// Traceback is the whole error when it is longer than Error: the
	// script's traceback, most recent call last. Only the job's own
	// status carries it, not a list.
	Traceback string          `json:"traceback,omitempty"`
	Name      string          `json:"name,omitempty"` // the script's file name (Submit.Name)
	Contact   actors.NodeName `json:"contact"`
	Submitted time.Time       `json:"submitted"`
	Ended     time.Time       `json:"ended,omitzero"`
	// Waiting says why the job cannot make progress now, while it cannot:
	// "waiting for a leader" (none known; with the raft elector also
	// whether an election is running), "waiting for a leader: the leader
	// node-3 is not a live member", "… is unreachable", or, with the raft
	// elector, "no quorum: 2 of 5 voters reachable (node-1, node-2), a
	// majority is 3; …". Empty while the job can progress, and once it
	// ended.
	Waiting string `json:"waiting,omitempty"`
	// PartsByNode counts the part results the contact accepted, by the
	// node that ran the part (a part run twice counts once, for the node
	// whose result came first). Absent until a part is done.
	PartsByNode map[actors.NodeName]int `json:"parts_by_node,omitempty"`
	// Progress is how far the job has got, from 0 to 1: the parts done
	// and the fractions the running parts reported (Starlark's
	// progress(fraction), an exec script's "TROUPE_PROGRESS 0.42" line),
	// over the parts; 1 once it succeeded. A part that reports nothing
	// counts 0 until it is done.
	Progress float64 `json:"progress"`
}

// StatusRequest asks for a job's [Status], at any node: the job's contact
// answers; another node forwards the question to the contact (named in the
// id) and answers with its reply. Errors: ErrNotFound (no such job at its
// contact), ErrContactLost (the contact is not a live member, or fails or
// leaves before it answers), ErrQueryUnanswered (the contact did not
// answer within Timeout). [JobStatus] makes the call.
type StatusRequest struct {
	actors.Returns[Status]
	ID string
	// Timeout bounds the wait for the contact's answer (0:
	// DefaultCancelTimeout; at most MaxCancelTimeout).
	Timeout time.Duration
	// Wait, when positive, makes the contact answer when the job has
	// ended or after Wait (at most MaxStatusWait; through another node, a
	// little before Timeout), whichever comes first: a long poll, which
	// costs nothing while it waits. [WaitJob] makes the call.
	Wait time.Duration
}

// MaxStatusWait bounds StatusRequest.Wait (GET /v1/jobs/{id}?wait=).
const MaxStatusWait = time.Minute

// WaitJob asks node for a job's status as JobStatus does, answered when
// the job has ended or after wait (at most MaxStatusWait), whichever
// comes first. ctx's deadline must leave room beyond wait for the answer
// (without one, wait plus DefaultCancelTimeout).
func WaitJob(ctx context.Context, node *actors.Node, id string, wait time.Duration) (Status, error) {
	wait = min(max(wait, 0), MaxStatusWait)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait+DefaultCancelTimeout)
		defer cancel()
	}
	return forward(ctx, node, "the status of "+id, func(timeout time.Duration) StatusRequest {
		return StatusRequest{ID: id, Timeout: timeout, Wait: min(wait, timeout-forwardMargin(timeout))}
	})
}

// ListRequest asks for the Status of every job this node is contact of
// (newest first, without results or tracebacks); the reply is a []Status.
// [ClusterListRequest] asks every member.
type ListRequest struct{ actors.Returns[[]Status] }

// CancelRequest cancels a job from any node: at the contact it ends the job
// and stops every part; elsewhere it is forwarded to the contact, whose
// answer is the reply. It is a request (actors.Call, actors.Request) to
// [Name] on the same node; [CancelJob] makes the call. Errors:
// ErrNotFound (no such job at its contact), ErrContactLost (the contact is
// not a live member, or fails or leaves before it answers),
// ErrCancelUnanswered (the contact did not answer in time, or this
// protocol restarted meanwhile; the cancellation may or may not have
// reached it).
type CancelRequest struct {
	actors.Returns[Cancelling]
	ID     string
	Reason string
	// Timeout bounds the wait for the contact's answer to a forwarded
	// cancellation (0: DefaultCancelTimeout; at most MaxCancelTimeout).
	Timeout time.Duration
}

// Bounds of CancelRequest.Timeout.
const (
	DefaultCancelTimeout = 5 * time.Second
	MaxCancelTimeout     = time.Minute
)

// Cancelling answers a CancelRequest: the job's status at its contact after
// the cancellation (cancelled, or the end it had reached before).
type Cancelling struct {
	Status *Status
	// ForwardedTo is the contact that answered when it is another node,
	// "" when this node is the job's contact.
	ForwardedTo actors.NodeName
}

// StatsRequest asks for this node's [Stats].
type StatsRequest struct{ actors.Returns[Stats] }

// Stats counts one node's work in every role.
type Stats struct {
	Leading    bool            // this node believes it leads
	Leader     actors.NodeName // the leader it follows
	Term       uint64
	LeaderJobs int    // jobs this node schedules as leader
	Queued     int    // parts waiting for a worker at this leader
	Held       int    // parts this leader counts as running on workers
	Refused    int64  // assignments this worker refused
	Dropped    int64  // assignments made before this worker's latest report, dropped
	Report     uint64 // number of this worker's latest report to its leader
	Running    int    // parts running on this node now
	Waiting    int    // parts assigned to this node, waiting for a slot
	PartsRun   int64  // parts this node finished running (any outcome)
	PartsSent  int64  // results this node sent to contacts
	Cancelled  int64  // parts stopped before they finished
	HandedBack int64  // parts handed back to the leader by Drain
	Backups    int64  // backup copies this node started as leader
	Exhausted  int64  // parts whose process died or was killed here (memory, stack, time)
	Strikes    int64  // parts this leader saw exhaust a worker or die with it, counted once per worker
	Poisoned   int64  // parts this leader declared poison, failing their job
	Owned      int    // jobs this node is contact of (any state)
	Wakes      int64  // times the tick started because work appeared (it stops when none is left)
	// ProgressSent counts the PartProgress messages this worker sent
	// contacts (at most one per part every 250 ms).
	ProgressSent int64
	// Watches counts the status answers this contact holds until their
	// job ends (StatusRequest.Wait; at most 1000, later ones are answered
	// at once).
	Watches int
}

// CancelJob cancels a job through node and waits for the contact's answer,
// at most until ctx's deadline (DefaultCancelTimeout without one). When
// node is not the contact, the contact is asked to answer a little before
// the deadline (a quarter of the wait, 0.1 to 1 s, at most half of it), so
// that its silence is told as ErrCancelUnanswered; when
// node's own jobs protocol does not answer, the error wraps
// actors.ErrTimeout.
func CancelJob(ctx context.Context, node *actors.Node, id, reason string) (Cancelling, error) {
	return forward(ctx, node, "cancelling "+id, func(timeout time.Duration) CancelRequest {
		return CancelRequest{ID: id, Reason: reason, Timeout: timeout}
	})
}

// forward makes a request that node's jobs protocol may pass on to other
// members (a cancel, a status, a list), waiting at most until ctx's
// deadline (DefaultCancelTimeout without one), and asks the others to
// answer forwardMargin earlier. what names the request in errors.
func forward[Req actors.Asks[Rep], Rep any](ctx context.Context, node *actors.Node, what string, req func(timeout time.Duration) Req) (Rep, error) {
	var zero Rep
	wait := DefaultCancelTimeout
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	if wait <= 0 {
		return zero, fmt.Errorf("jobs: %s through %s: %w", what, node.Name(), context.DeadlineExceeded)
	}
	ctx, stop := context.WithTimeout(ctx, wait)
	defer stop()
	rep, err := actors.Call(ctx, node, Name, req(wait-forwardMargin(wait)))
	switch {
	case errors.Is(err, actors.ErrTimeout):
		return zero, fmt.Errorf("%w: %s: the jobs protocol of %s did not answer within %v", actors.ErrTimeout, what, node.Name(), wait.Round(time.Millisecond))
	case errors.Is(err, actors.ErrUnknownProtocol), errors.Is(err, actors.ErrProtocolStopped), errors.Is(err, actors.ErrNodeStopped):
		return zero, fmt.Errorf("jobs: %s through %s: %w", what, node.Name(), err)
	}
	return rep, err
}

// ContactOf is the contact node named in a job id ("" if the id is not
// one): ids are "<contact>.<generation>.<seq>".
func ContactOf(id string) actors.NodeName {
	i := strings.LastIndexByte(id, '.')
	if i <= 0 {
		return ""
	}
	j := strings.LastIndexByte(id[:i], '.')
	if j <= 0 {
		return ""
	}
	return actors.NodeName(id[:j])
}

// forwardMargin is how much earlier than the caller's deadline a contact
// (or, for a list, every member) is asked to answer a cancel, a status or
// a list, so that its silence is told as such (ErrCancelUnanswered,
// ErrQueryUnanswered, JobList.Missing) rather than as the caller's own
// timeout: the time the
// answer, or the news of its absence, takes to come back through a busy
// node. A tenth of a short wait (30 ms of 300) was not enough under load.
func forwardMargin(wait time.Duration) time.Duration {
	return min(max(wait/4, 100*time.Millisecond), time.Second, wait/2)
}

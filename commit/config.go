package commit

import (
	"fmt"
	"slices"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/transport"
)

// Mode says where the coordinator records its decisions.
type Mode string

// The modes. Textbook is two-phase commit as the books give it: a
// participant that voted yes waits for the coordinator, however long it is
// down. Consensus records each decision in the consensus group (package
// consensus, which must run on every node), so that in-doubt participants
// learn it, or abort an abandoned transaction, without the coordinator.
const (
	Textbook  Mode = "textbook"
	Consensus Mode = "consensus"
)

// Config sets up the commit protocol of one node. Start from
// [DefaultConfig].
type Config struct {
	// DataDir is the root of the durable state: a node keeps its log in
	// DataDir/<node>/commit.db. Required.
	DataDir string
	// Resource opens this node's resource, at every start of the protocol
	// (and again after a restart, so that a crash loses what it held in
	// memory); the protocol closes it when it stops. Required.
	Resource func(node actors.NodeName) (Resource, error)
	// Mode is where this node, as coordinator, records its decisions.
	// A participant follows the mode each transaction carries.
	Mode Mode
	// Nodes, when set, are the nodes a transaction may name; a
	// transaction naming another is refused with ErrUnknownNode before
	// anything happens. When empty, an unknown node is found when the
	// coordinator cannot send it the Prepare, and the transaction aborts.
	Nodes []actors.NodeName

	// VoteTimeout: a coordinator that lacks a vote this long after it
	// began preparing aborts the transaction.
	VoteTimeout time.Duration
	// PrepareTimeout: a participant whose Resource has not answered a
	// Prepare this long aborts its part unilaterally and votes no.
	PrepareTimeout time.Duration
	// RetryInterval is the first delay before a message without its
	// answer is sent again (Prepare without a vote, Decision without an
	// ack, an in-doubt participant's Query); it doubles up to
	// MaxRetryInterval.
	RetryInterval    time.Duration
	MaxRetryInterval time.Duration
	// AbandonAfter, in Consensus mode: a participant in doubt this long
	// (voted yes, no decision) tries to abort the transaction in the
	// consensus group. Exactly one of that abort and the coordinator's
	// decision wins. It must exceed VoteTimeout, so that a live
	// coordinator decides first.
	AbandonAfter time.Duration

	// MaxParticipants caps the participants of one transaction, and
	// MaxOpBytes the size of one participant's op (both go in one
	// message).
	MaxParticipants int
	MaxOpBytes      int
	// RetainEnded is how many ended transactions a participant remembers,
	// so that a duplicated Prepare arriving after the end is recognised
	// and not prepared again.
	RetainEnded int
	// NoSync turns off fsync of the log. A crash of the machine (not of
	// the process) can then lose a vote or a decision, which breaks
	// atomicity. For tests and benchmarks only; a node started with it
	// logs a warning.
	NoSync bool

	// Inline makes the Resource calls on the protocol's mailbox instead of
	// the goroutine the protocol owns; their results still come back as
	// later events. A slow Resource then holds the protocol up, so this is
	// for deterministic simulation (package simulation), where nothing may
	// run off the scheduler's goroutine.
	Inline bool

	// hook is the fault-injection point of the tests (steps.go).
	hook func(s step, node actors.NodeName, tx string) bool
}

// DefaultConfig returns defaults for a LAN; DataDir and Resource are left
// for the caller.
func DefaultConfig() Config {
	return Config{
		Mode:             Textbook,
		VoteTimeout:      time.Second,            // a round trip and two fsyncs, with room for a slow disk
		PrepareTimeout:   500 * time.Millisecond, // below VoteTimeout: the no vote arrives before the coordinator gives up
		RetryInterval:    100 * time.Millisecond, // well above a LAN round trip
		MaxRetryInterval: 2 * time.Second,        // a dead peer costs one message per 2 s per transaction
		AbandonAfter:     3 * time.Second,        // three vote timeouts: a live coordinator has decided long before
		MaxParticipants:  64,                     // one Prepare and one vote each
		MaxOpBytes:       1 << 20,                // 1 MiB: a Prepare fits a 4 MiB envelope
		RetainEnded:      10000,                  // ended transactions remembered per participant
	}
}

// Validate reports the first field that is missing or out of range.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("%w: DataDir is empty; the commit log needs a directory", ErrInvalidConfig)
	}
	if c.Resource == nil {
		return fmt.Errorf("%w: Resource is nil; give the function that opens this node's resource", ErrInvalidConfig)
	}
	if c.Mode != Textbook && c.Mode != Consensus {
		return fmt.Errorf("%w: Mode %q; valid: %q, %q", ErrInvalidConfig, c.Mode, Textbook, Consensus)
	}
	for i, n := range c.Nodes {
		if err := transport.ValidateName("node", n); err != nil {
			return fmt.Errorf("%w: Nodes[%d]: %v", ErrInvalidConfig, i, err)
		}
		if slices.Contains(c.Nodes[:i], n) {
			return fmt.Errorf("%w: Nodes lists %q twice", ErrInvalidConfig, n)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"VoteTimeout", c.VoteTimeout}, {"PrepareTimeout", c.PrepareTimeout}, {"RetryInterval", c.RetryInterval},
		{"MaxRetryInterval", c.MaxRetryInterval}, {"AbandonAfter", c.AbandonAfter}} {
		if d.v <= 0 {
			return fmt.Errorf("%w: %s is %v; it must be positive", ErrInvalidConfig, d.name, d.v)
		}
	}
	if c.MaxRetryInterval < c.RetryInterval {
		return fmt.Errorf("%w: MaxRetryInterval (%v) is below RetryInterval (%v)", ErrInvalidConfig, c.MaxRetryInterval, c.RetryInterval)
	}
	if c.AbandonAfter <= c.VoteTimeout {
		return fmt.Errorf("%w: AbandonAfter (%v) must exceed VoteTimeout (%v), so that a live coordinator decides before participants give up", ErrInvalidConfig, c.AbandonAfter, c.VoteTimeout)
	}
	if c.MaxParticipants < 1 || c.MaxOpBytes < 0 || c.MaxOpBytes > maxOpBytes || c.RetainEnded < 1 {
		return fmt.Errorf("%w: MaxParticipants (%d) and RetainEnded (%d) must be positive, MaxOpBytes (%d) in [0, %d]",
			ErrInvalidConfig, c.MaxParticipants, c.RetainEnded, c.MaxOpBytes, maxOpBytes)
	}
	return nil
}

// maxOpBytes is the largest MaxOpBytes Validate accepts: a Prepare must fit
// one 4 MiB envelope with room for its other fields.
const maxOpBytes = 3 << 20

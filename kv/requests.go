package kv

import (
	"errors"
	"fmt"

	"github.com/troupe-dev/troupe/actors"
)

// Op is the operation of a [Request].
type Op int

// The operations of the key-value store.
const (
	OpGet    Op = iota + 1 // linearizable read (ReadIndex)
	OpPut                  // set Key to Value
	OpDelete               // remove Key
	OpCAS                  // set Key to Value if it holds Prev (an absent key never matches)
)

func (o Op) String() string {
	switch o {
	case OpGet:
		return "get"
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpCAS:
		return "cas"
	}
	return "unknown"
}

// Request asks a node's raft protocol for one key-value operation: a
// request (actors.Call from outside the protocols, actors.Request from a
// protocol) to consensus.Name on the same node, answered with a [Result].
// Any node serves it (writes and reads are forwarded to the leader by
// raft). [Client] wraps it in blocking calls.
//
// A request that fails is answered with an error: one that wraps
// consensus.ErrNotApplied (ErrNoQuorum, ErrNoLeader — an
// *consensus.UnavailableError —, ErrProposalDropped), ErrInvalidKey,
// ErrValueTooLarge or consensus.ErrBadRequest means it was not applied;
// consensus.ErrTimeout (the protocol's own, after
// consensus.Config.RequestTimeout) or ErrStopped that it may have been.
// Wait a little longer than RequestTimeout for the answer, or the
// runtime's timeout (actors.ErrTimeout) comes first and the protocol's
// answer, which may know the write was not applied, is lost.
type Request struct {
	actors.Returns[Result]
	Op    Op
	Key   string
	Value []byte // OpPut, OpCAS
	Prev  []byte // OpCAS
}

// Result is the outcome of a Request that did not fail.
type Result struct {
	// OK: the write was applied (for OpCAS: the swap happened; false when
	// the key did not hold Prev), or the read was served.
	OK bool
	// Found: the key existed (OpGet; OpDelete: before the delete; OpCAS:
	// when the swap failed, whether the key exists).
	Found bool
	// Value: OpGet's value; for a failed OpCAS the current value.
	Value []byte
	// Index is the raft log index the write was applied at, or the index
	// the read was served at.
	Index uint64
}

// Config bounds the store's keys and values. Start from [DefaultConfig].
type Config struct {
	MaxKeySize   int // bytes of a key
	MaxValueSize int // bytes of a value
}

// DefaultConfig returns the limits the node binary uses.
func DefaultConfig() Config {
	return Config{
		MaxKeySize:   1024,     // bytes
		MaxValueSize: 64 << 10, // 64 KiB: a snapshot must fit an envelope (docs/consensus.md)
	}
}

// maxValueSize is the largest MaxValueSize Validate accepts: an entry must
// fit in one 4 MiB envelope with room to spare.
const maxValueSize = 1 << 20

// Validate reports a limit out of range.
func (c Config) Validate() error {
	if c.MaxKeySize < 1 || c.MaxKeySize > maxValueSize || c.MaxValueSize < 0 || c.MaxValueSize > maxValueSize {
		return fmt.Errorf("%w: MaxKeySize (%d) must be in [1, %d] and MaxValueSize (%d) in [0, %d]", ErrInvalidConfig, c.MaxKeySize, maxValueSize, c.MaxValueSize, maxValueSize)
	}
	return nil
}

// Errors of the kv package; the raft group's are consensus's
// (ErrNotApplied, ErrTimeout, ...). Each is wrapped with detail; test with
// [errors.Is].
var (
	// ErrInvalidConfig: a Config field out of range.
	ErrInvalidConfig = errors.New("kv: invalid configuration")
	// ErrInvalidKey: a key that is empty, too long, not UTF-8 or holds
	// control characters. Not applied.
	ErrInvalidKey = errors.New("kv: invalid key")
	// ErrValueTooLarge: a value over Config.MaxValueSize. Not applied.
	ErrValueTooLarge = errors.New("kv: value too large")
)

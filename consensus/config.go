package consensus

import (
	"fmt"
	"slices"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/transport"
)

// Config sets up the Raft protocol of one node. Start from [DefaultConfig].
type Config struct {
	// DataDir is the root of the durable state. A node keeps its write-ahead
	// log and snapshots in DataDir/<node name>/ (raft.db, wal-*/), so that the nodes
	// of one process (tests, the demo) can share a root. Required.
	DataDir string
	// Peers are the node names of the group's first voters. A node whose
	// data dir is empty bootstraps the group with them, unless Join is set;
	// a node that has state ignores them. Every node started with the same
	// Peers forms the same group.
	Peers []actors.NodeName
	// Join starts a node with empty state as a non-member that waits to be
	// added (Admin.AddVoter or AddLearner on the leader) and then catches
	// up from the leader, by snapshot if the log was compacted.
	Join bool
	// ForceNewState starts over a node whose raft state in its data dir is
	// incomplete (ErrMissingState: raft.db deleted or emptied, its log
	// deleted) or damaged (ErrCorrupt): PrepareDataDir moves the raft files
	// aside (DataDir/<node>/raft-set-aside-<n>/) and the node starts as a
	// new, empty member. It has forgotten its votes and the entries it
	// acknowledged, so it must have been removed from the group first
	// (Admin(RemoveNode)) and is added back once started (AddVoter); it
	// needs Join. A complete state is left alone. The node binary's
	// --force-new-state; every use is logged as a warning.
	ForceNewState bool

	// Machines are the state machines the group replicates, side by side
	// in one log (a node runs package kv's store and package mutex's lease
	// locks). Every node of the group hosts the same machines under the
	// same names; names are unique. Empty: the group replicates nothing
	// but its membership.
	Machines []Machine

	TickInterval   time.Duration // one raft tick (heartbeats and elections count ticks)
	ElectionTicks  int           // ticks without a leader before a (pre-)vote; randomised in [n, 2n)
	HeartbeatTicks int           // ticks between a leader's heartbeats; below ElectionTicks

	// NoSync turns off fsync of the log and snapshots. Raft's safety needs
	// fsync before a node answers (a vote, an append): with NoSync an
	// acknowledged write can be lost by a machine crash. For benchmarks
	// only; a node started with it logs a warning.
	NoSync bool

	SnapshotEntries uint64 // applied entries between snapshots (then the log is compacted)
	CatchUpEntries  uint64 // entries kept behind a snapshot for slow followers
	MaxSizePerMsg   uint64 // bytes of entries in one append message
	MaxInflightMsgs int    // append messages in flight per follower
	// MaxInflightBytes caps the bytes of entries in flight to one
	// follower. A follower catching up would otherwise be sent up to
	// MaxInflightMsgs appends of MaxSizePerMsg at once, more than the
	// node port takes in one gRPC message (docs/architecture.md).
	MaxInflightBytes uint64
	MaxUncommitted   uint64 // bytes of uncommitted entries a leader accepts before dropping proposals
	// RequestTimeout bounds how long a request waits for its outcome
	// inside the protocol (ErrTimeout after it).
	RequestTimeout time.Duration

	// Inline makes the disk writes on the protocol's mailbox instead of
	// the goroutine the protocol owns; their results still come back as
	// later events, as they do from the goroutine. The mailbox then waits
	// for every fsync, so this is for deterministic simulation (package
	// simulation), where nothing may run off the scheduler's goroutine.
	Inline bool

	// writeHook, when set, runs before each batch of disk writes of the
	// named node, on the writer's goroutine: the tests' way to hold a
	// node's disk (export_test.go).
	writeHook func(node actors.NodeName)

	// forgetVote breaks Raft on purpose: a node restarted from its data
	// dir forgets whom it voted for in its current term. Only the tests
	// set it (export_test.go), to show that the simulation catches it.
	forgetVote bool
}

// DefaultConfig returns defaults for a LAN; DataDir and Peers are left for
// the caller.
func DefaultConfig() Config {
	return Config{
		TickInterval:   20 * time.Millisecond, // failover p99 under 600ms (docs/consensus.md)
		ElectionTicks:  10,                    // 200–400ms without a leader before voting
		HeartbeatTicks: 2,                     // a heartbeat every 40ms
		// A snapshot of the whole store every 10k writes; 5k entries stay
		// behind it so that a follower a little behind gets entries, not
		// the whole store.
		SnapshotEntries: 10000,
		CatchUpEntries:  5000,
		MaxSizePerMsg:   1 << 20, // 1 MiB of entries per append, well under the 4 MiB envelope
		MaxInflightMsgs: 256,
		// 16 appends of 1 MiB: a quarter of the node port's gRPC message.
		MaxInflightBytes: 16 << 20,
		MaxUncommitted:   64 << 20, // 64 MiB
		RequestTimeout:   5 * time.Second,
	}
}

// Validate reports the first field that is missing or out of range; the
// message after ErrInvalidConfig starts with the field's name.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("%w: DataDir is empty; the raft log needs a directory", ErrInvalidConfig)
	}
	if !c.Join && len(c.Peers) == 0 {
		return fmt.Errorf("%w: Peers is empty and Join is false; name the group's first voters, or set Join", ErrInvalidConfig)
	}
	if c.ForceNewState && !c.Join {
		return fmt.Errorf("%w: ForceNewState is set and Join is not; a node started over must not bootstrap the group: set Join, and add it back once it runs", ErrInvalidConfig)
	}
	seen := map[uint64]actors.NodeName{}
	for _, p := range c.Peers {
		if err := transport.ValidateName("peer", p); err != nil {
			return fmt.Errorf("%w: Peers: %v", ErrInvalidConfig, err)
		}
		id := ID(p)
		if other, ok := seen[id]; ok {
			return fmt.Errorf("%w: Peers %q and %q map to the same raft id %x; rename one", ErrInvalidConfig, other, p, id)
		}
		seen[id] = p
	}
	if c.TickInterval < time.Millisecond || c.TickInterval > 10*time.Second {
		return fmt.Errorf("%w: TickInterval is %v; use 1ms to 10s", ErrInvalidConfig, c.TickInterval)
	}
	if c.RequestTimeout <= 0 {
		return fmt.Errorf("%w: RequestTimeout is %v; it must be positive", ErrInvalidConfig, c.RequestTimeout)
	}
	if c.HeartbeatTicks < 1 || c.HeartbeatTicks > 1000 {
		return fmt.Errorf("%w: HeartbeatTicks is %d; use 1 to 1000", ErrInvalidConfig, c.HeartbeatTicks)
	}
	if c.ElectionTicks <= c.HeartbeatTicks || c.ElectionTicks > 10000 {
		return fmt.Errorf("%w: ElectionTicks is %d; use more than HeartbeatTicks (%d), up to 10000", ErrInvalidConfig, c.ElectionTicks, c.HeartbeatTicks)
	}
	if c.SnapshotEntries < 1 {
		return fmt.Errorf("%w: SnapshotEntries is 0; use at least 1", ErrInvalidConfig)
	}
	if c.MaxInflightBytes != 0 && c.MaxInflightBytes < c.MaxSizePerMsg {
		return fmt.Errorf("%w: MaxInflightBytes (%d) must be at least MaxSizePerMsg (%d), or 0 for no bound", ErrInvalidConfig, c.MaxInflightBytes, c.MaxSizePerMsg)
	}
	if c.MaxSizePerMsg < 1 || c.MaxInflightMsgs < 1 || c.MaxUncommitted < 1 {
		return fmt.Errorf("%w: MaxSizePerMsg, MaxInflightMsgs and MaxUncommitted must be positive", ErrInvalidConfig)
	}
	names := map[string]bool{}
	for i, m := range c.Machines {
		if err := checkMachineName(m.Name); err != nil {
			return fmt.Errorf("%w: Machines[%d]: %v", ErrInvalidConfig, i, err)
		}
		if names[m.Name] {
			return fmt.Errorf("%w: Machines: %q is given twice; each machine has its own name", ErrInvalidConfig, m.Name)
		}
		if m.New == nil {
			return fmt.Errorf("%w: Machines: %q has no New", ErrInvalidConfig, m.Name)
		}
		names[m.Name] = true
	}
	return nil
}

// sortedPeers returns Peers sorted, without duplicates.
func (c Config) sortedPeers() []actors.NodeName {
	p := slices.Clone(c.Peers)
	slices.Sort(p)
	return slices.Compact(p)
}

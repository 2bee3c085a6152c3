package consensus

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/messages"
)

// The data of the raft log and snapshots is in an envelope that names the
// hosted machine of each command and snapshot section
// (messages.RaftEntry, messages.RaftSnapshot). Its format number is in
// both: 2. Format 1, before state machines, held the key-value store's
// commands (KVCommand) and snapshot (KVSnapshot) as they are; its fields
// are numbered apart from format 2's, so a format-1 entry or snapshot
// decodes with format 0 and is refused (ErrDataFormat), never applied as
// garbage.
const dataFormat = 2

// ErrDataFormat: the data dir (or a snapshot from the leader) holds raft
// entries or a snapshot in a format this version does not read — written
// by an earlier version of Troupe, or by a later one. The node refuses to
// start from it.
var ErrDataFormat = errors.New("consensus: raft data in an unknown format")

// formatError tells what was found instead of format 2, and what to do.
func formatError(what string, got uint32, err error) error {
	found := fmt.Sprintf("format %d", got)
	if got == 0 {
		found = "format 1 (a key-value command or snapshot of Troupe before state machines: KVCommand, KVSnapshot)"
	}
	if err != nil {
		found = fmt.Sprintf("data that does not decode as format %d (%v)", dataFormat, err)
	}
	return fmt.Errorf("%w: %s is in %s; this version reads format %d (troupe.consensus.v1.RaftEntry and RaftSnapshot). "+
		"Start the node over with an empty data dir (move DataDir/<node> aside: it catches up from the group), "+
		"or read the data out with the version that wrote it", ErrDataFormat, what, found, dataFormat)
}

// decodeRaftEntry decodes the data of a normal log entry.
func decodeRaftEntry(index uint64, data []byte) (*messages.RaftEntry, error) {
	e := &messages.RaftEntry{}
	err := proto.Unmarshal(data, e)
	if err != nil || e.Format != dataFormat {
		return nil, formatError(fmt.Sprintf("raft log entry %d", index), e.Format, err)
	}
	return e, nil
}

// encodeSnapshot is the snapshot data: the names, and each hosted
// machine's section in Config.Machines' order.
func (p *Raft) encodeSnapshot() ([]byte, error) {
	snap := &messages.RaftSnapshot{Format: dataFormat, Names: make(map[uint64]string, len(p.names))}
	for id, n := range p.names {
		snap.Names[id] = string(n)
	}
	for _, m := range p.machines {
		data, err := m.sm.Snapshot()
		if err != nil {
			return nil, fmt.Errorf("consensus: snapshot of machine %q: %w", m.name, err)
		}
		snap.Machines = append(snap.Machines, &messages.MachineSnapshot{Machine: m.name, Data: data})
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(snap)
}

// restoreMachines restores every hosted machine from snapshot data and
// returns the names it holds. A machine without a section (added to the
// group since) is restored from nil: empty; a section of a machine this node does not host is refused:
// its state would be lost.
func (p *Raft) restoreMachines(index uint64, data []byte) (map[uint64]actors.NodeName, error) {
	snap := &messages.RaftSnapshot{}
	err := proto.Unmarshal(data, snap)
	if err != nil || snap.Format != dataFormat {
		return nil, formatError(fmt.Sprintf("the raft snapshot at index %d", index), snap.Format, err)
	}
	sections := map[string][]byte{}
	for _, s := range snap.Machines {
		if _, ok := p.byName[s.Machine]; !ok {
			return nil, fmt.Errorf("%w: the raft snapshot at index %d holds the state of machine %q, which this node does not host (Config.Machines: %v); every node of a group must host the same machines",
				ErrDataFormat, index, s.Machine, p.machineNames())
		}
		if _, dup := sections[s.Machine]; dup {
			return nil, fmt.Errorf("%w: the raft snapshot at index %d holds machine %q twice", ErrCorrupt, index, s.Machine)
		}
		sections[s.Machine] = s.Data
	}
	for _, m := range p.machines {
		if err := m.sm.Restore(sections[m.name]); err != nil { // nil: no section, start empty
			return nil, fmt.Errorf("%w: machine %q does not restore from the snapshot at index %d: %v", ErrCorrupt, m.name, index, err)
		}
	}
	names := make(map[uint64]actors.NodeName, len(snap.Names))
	for id, n := range snap.Names {
		names[id] = actors.NodeName(n)
	}
	return names, nil
}

func (p *Raft) machineNames() []string {
	return slices.Sorted(maps.Keys(p.byName))
}

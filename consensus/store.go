package consensus

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/messages"
)

// store is the replicated state machine: a map from keys to values and the
// held lease locks (locks.go), changed only by applying committed entries,
// in log order.
type store struct {
	kv     map[string][]byte
	leases map[string]*lease
}

func newStore() *store { return &store{kv: map[string][]byte{}, leases: map[string]*lease{}} }

// apply runs one command and returns its result.
func (s *store) apply(c *messages.KVCommand) (Result, error) {
	switch c.Op {
	case messages.KVOp_KV_OP_PUT:
		s.kv[c.Key] = c.Value
		return Result{OK: true}, nil
	case messages.KVOp_KV_OP_DELETE:
		_, found := s.kv[c.Key]
		delete(s.kv, c.Key)
		return Result{OK: true, Found: found}, nil
	case messages.KVOp_KV_OP_CAS:
		cur, found := s.kv[c.Key]
		if !found || !bytes.Equal(cur, c.Prev) {
			return Result{OK: false, Found: found, Value: cur}, nil
		}
		s.kv[c.Key] = c.Value
		return Result{OK: true, Found: true}, nil
	}
	// A command this version does not know: applied as a no-op on every
	// node alike, so replicas stay equal.
	return Result{}, fmt.Errorf("%w: unknown operation %v in the log", ErrBadRequest, c.Op)
}

func (s *store) get(key string) Result {
	v, ok := s.kv[key]
	return Result{OK: true, Found: ok, Value: v}
}

// encode is the snapshot data: the pairs sorted by key, the names, and the
// leases sorted by name.
func (s *store) encode(names map[uint64]actors.NodeName) ([]byte, error) {
	wire := make(map[uint64]string, len(names))
	for id, n := range names {
		wire[id] = string(n)
	}
	snap := &messages.KVSnapshot{Names: wire, Leases: encodeLeases(s.leases)}
	for _, k := range slices.Sorted(maps.Keys(s.kv)) {
		snap.Pairs = append(snap.Pairs, &messages.KVPair{Key: k, Value: s.kv[k]})
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(snap)
}

// restore replaces the store with a snapshot's and returns its names.
func (s *store) restore(data []byte) (map[uint64]actors.NodeName, error) {
	var snap messages.KVSnapshot
	if err := proto.Unmarshal(data, &snap); err != nil {
		return nil, fmt.Errorf("%w: snapshot data does not decode: %v", ErrCorrupt, err)
	}
	s.kv = make(map[string][]byte, len(snap.Pairs))
	for _, p := range snap.Pairs {
		s.kv[p.Key] = p.Value
	}
	s.leases = decodeLeases(snap.Leases)
	names := make(map[uint64]actors.NodeName, len(snap.Names))
	for id, n := range snap.Names {
		names[id] = actors.NodeName(n)
	}
	return names, nil
}

// checkKey refuses keys that are empty, longer than max bytes, not UTF-8,
// or that hold control characters.
func checkKey(key string, max int) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty; a key is 1 to %d bytes of UTF-8 without control characters", ErrInvalidKey, max)
	case len(key) > max:
		return fmt.Errorf("%w: %d bytes; a key is at most %d bytes", ErrInvalidKey, len(key), max)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidKey)
	}
	for i, r := range key {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: control character %U at byte %d", ErrInvalidKey, r, i)
		}
	}
	return nil
}

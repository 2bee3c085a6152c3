package kv

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/messages"
)

// MachineName is the name the store is hosted under ([Machine]): its
// commands and snapshot section in the raft log are tagged with it.
const MachineName = "kv"

// Machine is the key-value store with cfg's limits, to host on the raft
// protocol (consensus.Config.Machines), or cfg.Validate's error.
func Machine(cfg Config) (consensus.Machine, error) {
	if err := cfg.Validate(); err != nil {
		return consensus.Machine{}, err
	}
	return consensus.Machine{Name: MachineName, New: func(env consensus.Env) consensus.StateMachine {
		return &store{cfg: cfg, node: env.Node, kv: map[string][]byte{}}
	}}, nil
}

// store is the replicated state machine: a map from keys to values,
// changed only by applying committed commands, in log order.
type store struct {
	cfg  Config
	node actors.NodeName
	kv   map[string][]byte
}

var _ consensus.Sizer = (*store)(nil)

// Register serves Request (gets after a ReadIndex, writes as commands) and
// BrowseRequest (from the local replica).
func (s *store) Register(r *consensus.Router) {
	consensus.HandleRequest(r, s.route, func(req Request, index uint64) (Result, error) {
		res := s.get(req.Key)
		res.Index = index
		return res, nil
	})
	consensus.HandleLocal(r, s.browse)
}

// route checks a request, and encodes a write's command.
func (s *store) route(req Request) ([]byte, bool, error) {
	if err := checkKey(req.Key, s.cfg.MaxKeySize); err != nil {
		return nil, false, err
	}
	if req.Op == OpGet {
		return nil, true, nil
	}
	cmd, err := s.encode(req)
	return cmd, false, err
}

// encode encodes a write's command.
func (s *store) encode(req Request) ([]byte, error) {
	if len(req.Value) > s.cfg.MaxValueSize {
		return nil, fmt.Errorf("%w: %d bytes; the limit is %d", ErrValueTooLarge, len(req.Value), s.cfg.MaxValueSize)
	}
	cmd := &messages.KVCommand{Key: req.Key, Value: req.Value, Prev: req.Prev}
	switch req.Op {
	case OpPut:
		cmd.Op = messages.KVOp_KV_OP_PUT
	case OpDelete:
		cmd.Op = messages.KVOp_KV_OP_DELETE
	case OpCAS:
		cmd.Op = messages.KVOp_KV_OP_CAS
	default:
		return nil, fmt.Errorf("%w: operation %d; valid: OpGet, OpPut, OpDelete, OpCAS", consensus.ErrBadRequest, req.Op)
	}
	return proto.Marshal(cmd)
}

// Apply runs one write and returns its Result.
func (s *store) Apply(c consensus.Command) (any, error) {
	var cmd messages.KVCommand
	if err := proto.Unmarshal(c.Data, &cmd); err != nil {
		// Not of this version's making: a no-op on every node alike.
		return nil, fmt.Errorf("%w: a key-value command at index %d does not decode: %v", consensus.ErrBadRequest, c.Index, err)
	}
	res := Result{Index: c.Index}
	switch cmd.Op {
	case messages.KVOp_KV_OP_PUT:
		s.kv[cmd.Key] = cmd.Value
		res.OK = true
	case messages.KVOp_KV_OP_DELETE:
		_, res.Found = s.kv[cmd.Key]
		delete(s.kv, cmd.Key)
		res.OK = true
	case messages.KVOp_KV_OP_CAS:
		cur, found := s.kv[cmd.Key]
		if !found || !bytes.Equal(cur, cmd.Prev) {
			res.Found, res.Value = found, cur
			return res, nil
		}
		s.kv[cmd.Key] = cmd.Value
		res.OK, res.Found = true, true
	default:
		// A command this version does not know: applied as a no-op on
		// every node alike, so replicas stay equal.
		return nil, fmt.Errorf("%w: unknown operation %v in the log", consensus.ErrBadRequest, cmd.Op)
	}
	return res, nil
}

func (s *store) get(key string) Result {
	v, ok := s.kv[key]
	return Result{OK: true, Found: ok, Value: v}
}

// Len is the number of keys (consensus.Status.Keys).
func (s *store) Len() int { return len(s.kv) }

// Snapshot encodes the pairs sorted by key.
func (s *store) Snapshot() ([]byte, error) {
	snap := &messages.KVSnapshot{Pairs: make([]*messages.KVPair, 0, len(s.kv))}
	for _, k := range slices.Sorted(maps.Keys(s.kv)) {
		snap.Pairs = append(snap.Pairs, &messages.KVPair{Key: k, Value: s.kv[k]})
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(snap)
}

// Restore replaces the store with a snapshot's (nil: empty).
func (s *store) Restore(data []byte) error {
	var snap messages.KVSnapshot
	if err := proto.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("kv: snapshot does not decode: %v", err)
	}
	s.kv = make(map[string][]byte, len(snap.Pairs))
	for _, p := range snap.Pairs {
		s.kv[p.Key] = p.Value
	}
	return nil
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

// DefaultMachine is Machine(DefaultConfig()), which cannot fail.
func DefaultMachine() consensus.Machine {
	m, err := Machine(DefaultConfig())
	if err != nil {
		panic(err) // DefaultConfig is valid
	}
	return m
}

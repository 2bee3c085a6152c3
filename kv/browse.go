package kv

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
)

// Bounds of a [BrowseRequest].
const (
	MaxBrowseLimit  = 1000 // keys or locks in one answer
	MaxBrowsePrefix = 1024 // bytes of a prefix (MaxKeySize's default)
	browsePreview   = 200  // bytes of a value shown
)

// BrowseRequest asks the raft protocol for the keys of this node's replica
// that start with Prefix, in byte order, after After: a read-only look for
// operators (the dashboard; package mutex's LocksRequest lists the locks). It is not a
// linearizable read: the answer is the replica as applied up to
// Browse.Applied, which may trail the leader's commit. It costs a pass
// over every key of the replica on the protocol's goroutine. A request
// (actors.Call to consensus.Name); consensus.ErrBadRequest for a limit or
// prefix out of range.
type BrowseRequest struct {
	actors.Returns[Browse]
	Prefix string
	After  string // the last key of the previous page ("" for the first)
	Limit  int    // 1 to MaxBrowseLimit; 0 means 100
}

// Browse answers a BrowseRequest.
type Browse struct {
	Node    actors.NodeName `json:"node"`
	Applied uint64          `json:"applied"` // the replica's applied index
	Keys    []KeyInfo       `json:"keys"`    // in byte order
	// More: further keys match after the last one (ask again with After).
	More bool `json:"more"`
}

// KeyInfo is one key of a [Browse].
type KeyInfo struct {
	Key  string `json:"key"`
	Size int    `json:"size"` // bytes of the value
	// Value is the value's first bytes when they are UTF-8 text; Binary
	// tells when they are not (Value is then empty).
	Value  string `json:"value"`
	Cut    bool   `json:"cut,omitempty"` // Value is the first bytes only
	Binary bool   `json:"binary,omitempty"`
}

func (r *BrowseRequest) check() error {
	if r.Limit == 0 {
		r.Limit = 100
	}
	if r.Limit < 1 || r.Limit > MaxBrowseLimit {
		return fmt.Errorf("%w: limit %d; use 1 to %d", consensus.ErrBadRequest, r.Limit, MaxBrowseLimit)
	}
	if len(r.Prefix) > MaxBrowsePrefix || len(r.After) > MaxBrowsePrefix {
		return fmt.Errorf("%w: a prefix or after of %d bytes; at most %d", consensus.ErrBadRequest, max(len(r.Prefix), len(r.After)), MaxBrowsePrefix)
	}
	return nil
}

// browse answers a BrowseRequest from the local replica.
func (s *store) browse(r BrowseRequest, applied uint64) (Browse, error) {
	if err := r.check(); err != nil {
		return Browse{}, err
	}
	out := Browse{Node: s.node, Applied: applied, Keys: []KeyInfo{}}
	var keys []string
	for k := range s.kv {
		if strings.HasPrefix(k, r.Prefix) && k > r.After {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if len(keys) > r.Limit {
		keys, out.More = keys[:r.Limit], true
	}
	for _, k := range keys {
		v := s.kv[k]
		ki := KeyInfo{Key: k, Size: len(v)}
		head := v[:min(len(v), browsePreview)]
		for cut := 0; cut < utf8.UTFMax-1 && len(head) < len(v) && !utf8.Valid(head); cut++ {
			head = head[:len(head)-1] // a rune cut at the edge
		}
		if utf8.Valid(head) {
			ki.Value, ki.Cut = string(head), len(head) < len(v)
		} else {
			ki.Binary = true
		}
		out.Keys = append(out.Keys, ki)
	}
	return out, nil
}

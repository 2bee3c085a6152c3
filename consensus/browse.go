package consensus

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/troupe-dev/troupe/actors"
)

// Bounds of a [BrowseRequest].
const (
	MaxBrowseLimit  = 1000 // keys or locks in one answer
	MaxBrowsePrefix = 1024 // bytes of a prefix (MaxKeySize's default)
	browsePreview   = 200  // bytes of a value shown
)

// BrowseRequest asks the raft protocol for the keys and the held locks of
// this node's replica whose name starts with Prefix, in byte order, after
// After: a read-only look for operators (the dashboard). It is not a
// linearizable read: the answer is the replica as applied up to
// Browse.Applied, which may trail the leader's commit. It costs a pass
// over every key of the replica on the protocol's goroutine. A request
// (actors.Call); ErrBadRequest for a limit or prefix out of range.
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
	More  bool       `json:"more"`
	Locks []LockInfo `json:"locks"` // the held locks matching Prefix, in name order (at most Limit)
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

// LockInfo is one held lock of a [Browse].
type LockInfo struct {
	Name  string `json:"name"`
	Owner string `json:"owner"`
	// Token is the holder's fencing token (the log index of its grant),
	// as a decimal string: exact in JavaScript beyond 2^53.
	Token     uint64        `json:"token,string"`
	TTL       time.Duration `json:"ttl_ns"`
	ExpiresIn time.Duration `json:"expires_in_ns"` // on this node's clock; 0 if its countdown has not started here
}

func (r *BrowseRequest) check() error {
	if r.Limit == 0 {
		r.Limit = 100
	}
	if r.Limit < 1 || r.Limit > MaxBrowseLimit {
		return fmt.Errorf("%w: limit %d; use 1 to %d", ErrBadRequest, r.Limit, MaxBrowseLimit)
	}
	if len(r.Prefix) > MaxBrowsePrefix || len(r.After) > MaxBrowsePrefix {
		return fmt.Errorf("%w: a prefix or after of %d bytes; at most %d", ErrBadRequest, max(len(r.Prefix), len(r.After)), MaxBrowsePrefix)
	}
	return nil
}

func (p *Raft) onBrowse(_ *actors.Context, r BrowseRequest) (Browse, error) {
	if err := r.check(); err != nil {
		return Browse{}, err
	}
	out := Browse{Node: p.node, Applied: p.applied, Keys: []KeyInfo{}, Locks: []LockInfo{}}
	var keys []string
	for k := range p.sm.kv {
		if strings.HasPrefix(k, r.Prefix) && k > r.After {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if len(keys) > r.Limit {
		keys, out.More = keys[:r.Limit], true
	}
	for _, k := range keys {
		v := p.sm.kv[k]
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
	for name, l := range p.sm.leases {
		if strings.HasPrefix(name, r.Prefix) {
			out.Locks = append(out.Locks, LockInfo{Name: name, Owner: l.owner, Token: l.token, TTL: l.ttl, ExpiresIn: p.expiresIn(name)})
		}
	}
	slices.SortFunc(out.Locks, func(a, b LockInfo) int { return strings.Compare(a.Name, b.Name) })
	if len(out.Locks) > r.Limit {
		out.Locks = out.Locks[:r.Limit]
	}
	return out, nil
}

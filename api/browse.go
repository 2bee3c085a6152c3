package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/internal/httpjson"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/mutex"
)

// browse is the answer of GET /v1/keys: the keys (kv.Browse) and the held
// locks (mutex.LocksRequest) of this node's replica.
type browse struct {
	kv.Browse
	Locks []mutex.LockInfo `json:"locks"` // the held locks matching the prefix, in name order (at most limit)
}

// keys answers GET /v1/keys?prefix=&after=&limit=: the keys and held
// locks of this node's raft replica whose names start with prefix
// (kv.Browse and mutex.LocksRequest; read-only, not linearizable: as
// applied here).
func (s *server) keys(w http.ResponseWriter, r *http.Request) {
	q, err := httpjson.Query(r, "prefix", "after", "limit")
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	req := kv.BrowseRequest{Prefix: q.Get("prefix"), After: q.Get("after")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > kv.MaxBrowseLimit {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit %.40q: use a number from 1 to %d", v, kv.MaxBrowseLimit))
			return
		}
		req.Limit = n
	}
	for _, p := range []struct{ name, v string }{{"prefix", req.Prefix}, {"after", req.After}} {
		if len(p.v) > kv.MaxBrowsePrefix {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%s of %d bytes: at most %d (a key's longest)", p.name, len(p.v), kv.MaxBrowsePrefix))
			return
		}
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	b, err := actors.Call(ctx, s.node, consensus.Name, req)
	var locks []mutex.LockInfo
	if err == nil {
		locks, err = actors.Call(ctx, s.node, consensus.Name, mutex.LocksRequest{Prefix: req.Prefix, Limit: req.Limit})
		if errors.Is(err, actors.ErrNoHandler) {
			locks, err = []mutex.LockInfo{}, nil // a group that hosts no lease locks
		}
	}
	switch {
	case errors.Is(err, actors.ErrUnknownProtocol):
		httpjson.WriteError(w, http.StatusNotFound, "no_raft",
			fmt.Errorf("node %s runs no raft group, so it holds no keys or locks: ask a node that does", s.node.Name()))
	case errors.Is(err, consensus.ErrBadRequest):
		writeError(w, http.StatusBadRequest, err)
	case err != nil:
		writeError(w, statusOf(err), err)
	default:
		writeJSON(w, http.StatusOK, browse{Browse: b, Locks: locks})
	}
}

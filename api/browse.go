package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/internal/httpjson"
)

// keys answers GET /v1/keys?prefix=&after=&limit=: the keys and held
// locks of this node's raft replica whose names start with prefix
// (consensus.Browse; read-only, not linearizable: as applied here).
func (s *server) keys(w http.ResponseWriter, r *http.Request) {
	q, err := httpjson.Query(r, "prefix", "after", "limit")
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	req := consensus.BrowseRequest{Prefix: q.Get("prefix"), After: q.Get("after")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > consensus.MaxBrowseLimit {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit %.40q: use a number from 1 to %d", v, consensus.MaxBrowseLimit))
			return
		}
		req.Limit = n
	}
	for _, p := range []struct{ name, v string }{{"prefix", req.Prefix}, {"after", req.After}} {
		if len(p.v) > consensus.MaxBrowsePrefix {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%s of %d bytes: at most %d (a key's longest)", p.name, len(p.v), consensus.MaxBrowsePrefix))
			return
		}
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	b, err := actors.Call(ctx, s.node, consensus.Name, req)
	switch {
	case errors.Is(err, actors.ErrUnknownProtocol):
		httpjson.WriteError(w, http.StatusNotFound, "no_raft",
			fmt.Errorf("node %s runs no raft group, so it holds no keys or locks: ask a node that does", s.node.Name()))
	case errors.Is(err, consensus.ErrBadRequest):
		writeError(w, http.StatusBadRequest, err)
	case err != nil:
		writeError(w, statusOf(err), err)
	default:
		writeJSON(w, http.StatusOK, b)
	}
}

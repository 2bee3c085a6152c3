package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/config"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/internal/httpjson"
	"github.com/troupe-dev/troupe/jobs"
)

// flagValues returns the configuration keys set by the flags given on the
// command line, as text: config.Key.Flag names the flag of each key.
func flagValues(cmd *cobra.Command) map[string]string {
	byFlag := map[string]string{}
	for _, k := range config.Keys() {
		if k.Flag != "" {
			byFlag[k.Flag] = k.Name
		}
	}
	out := map[string]string{}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		key, ok := byFlag[f.Name]
		if !ok {
			return
		}
		if s, ok := f.Value.(pflag.SliceValue); ok {
			out[key] = strings.Join(s.GetSlice(), ",")
		} else {
			out[key] = f.Value.String()
		}
	})
	return out
}

// running is what a node's run-time reconfiguration needs: the sources
// it was started from and the configuration it runs.
type running struct {
	src     config.Sources
	node    *actors.Node
	log     zerolog.Logger
	dataDir string
	token   *api.Token

	mu  sync.Mutex // one reconfiguration at a time
	cfg atomic.Pointer[config.Config]
}

// errRestart: the new configuration changes keys that only a restart
// applies.
var errRestart = config.ErrRestart

// applied is the answer of PUT /v1/config.
type applied struct {
	Changed []changed `json:"changed"`
}

type changed struct {
	Key string `json:"key"`
	Old string `json:"old"`
	New string `json:"new"`
}

// apply validates a new configuration file (data, or the --config file
// when data is nil), with the environment and flags the node started with
// over it, and delivers each changed section to its protocol as a
// reconfiguration event. It changes nothing when the file is invalid, when
// it changes a key that needs a restart, or when a protocol refuses its
// section (the sections applied before it are put back).
func (r *running) apply(ctx context.Context, data []byte) (applied, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	src := r.src
	src.Data = data
	if data != nil && src.File == "" {
		src.File = "the applied file"
	}
	next, err := config.Load(src)
	if err != nil {
		return applied{}, err
	}
	cur := r.cfg.Load()
	changes, err := config.RunTimeChanges(cur, next)
	if err != nil {
		return applied{}, fmt.Errorf("%w; nothing was changed (keys applied without a restart: %s)", err, liveKeys())
	}
	out := applied{Changed: []changed{}}
	sections := map[string]bool{}
	for _, ch := range changes {
		sections[ch.Key.Section] = true
		out.Changed = append(out.Changed, changed{Key: ch.Key.Name, Old: ch.Old, New: ch.New})
	}
	type step struct {
		protocol actors.ProtocolName
		next     any
		undo     any
	}
	var steps []step
	if sections["jobs"] {
		jn, err := next.JobsConfig(r.dataDir)
		if err != nil {
			return applied{}, fmt.Errorf("%w: %w", config.ErrInvalid, err)
		}
		jo, err := cur.JobsConfig(r.dataDir)
		if err != nil {
			return applied{}, err
		}
		steps = append(steps, step{jobs.Name, jn, jo})
	}
	if sections["election"] && next.Election.Elector == "bully" {
		steps = append(steps, step{election.Name, next.ElectionConfig().Bully, cur.ElectionConfig().Bully})
	}
	for i, s := range steps {
		if err := r.node.Reconfigure(ctx, s.protocol, s.next); err != nil {
			for _, done := range steps[:i] {
				if uerr := r.node.Reconfigure(ctx, done.protocol, done.undo); uerr != nil {
					r.log.Error().Err(uerr).Str("protocol", string(done.protocol)).Msg("putting the configuration back failed")
				}
			}
			return applied{}, fmt.Errorf("protocol %s refused its new configuration; nothing was changed: %w", s.protocol, err)
		}
	}
	r.cfg.Store(next)
	for _, ch := range out.Changed {
		r.log.Info().Str("key", ch.Key).Str("old", ch.Old).Str("new", ch.New).Msg("configuration changed")
	}
	return out, nil
}

// liveKeys lists the keys applied without a restart.
func liveKeys() string {
	var live []string
	for _, k := range config.Keys() {
		if k.Live {
			live = append(live, k.Name)
		}
	}
	return strings.Join(live, ", ")
}

// reload applies the --config file again (SIGHUP).
func (r *running) reload(ctx context.Context) {
	if r.src.File == "" {
		r.log.Warn().Msg("SIGHUP: the node was started without --config; there is no file to read again")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := r.apply(ctx, nil)
	if err != nil {
		r.log.Error().Err(err).Str("file", r.src.File).Msg("SIGHUP: the new configuration is refused; the running one is kept")
		return
	}
	r.log.Info().Str("file", r.src.File).Int("changed", len(out.Changed)).Msg("SIGHUP: configuration applied")
}

// maxConfigBytes caps the body of PUT /v1/config.
const maxConfigBytes = 1 << 20

// routes adds the configuration and version endpoints.
func (r *running) routes(mux *http.ServeMux) {
	mux.Handle("/v1/config", httpjson.Methods{
		http.MethodGet: func(w http.ResponseWriter, req *http.Request) {
			if _, err := httpjson.Query(req); err != nil {
				httpjson.Fail(w, err)
				return
			}
			httpjson.Write(w, http.StatusOK, map[string]any{"node": r.node.Name(), "config": r.cfg.Load().Map(true)})
		},
		http.MethodPut: func(w http.ResponseWriter, req *http.Request) {
			if _, err := httpjson.Query(req); err != nil {
				httpjson.Fail(w, err)
				return
			}
			data, err := httpjson.ReadBody(w, req, maxConfigBytes)
			if err != nil {
				httpjson.Fail(w, err)
				return
			}
			ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
			defer cancel()
			out, err := r.apply(ctx, data)
			switch {
			case err == nil:
				httpjson.Write(w, http.StatusOK, out)
			case errors.Is(err, config.ErrInvalid):
				httpjson.WriteError(w, http.StatusBadRequest, "invalid_config", err)
			case errors.Is(err, errRestart):
				httpjson.WriteError(w, http.StatusConflict, "restart_required", err)
			default:
				httpjson.WriteError(w, http.StatusUnprocessableEntity, "refused", err)
			}
		},
	})
	mux.Handle("/v1/version", httpjson.Methods{http.MethodGet: func(w http.ResponseWriter, req *http.Request) {
		if _, err := httpjson.Query(req); err != nil {
			httpjson.Fail(w, err)
			return
		}
		httpjson.Write(w, http.StatusOK, buildInfo())
	}})
}

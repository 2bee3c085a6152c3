package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	starjson "go.starlark.net/lib/json"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// StarlarkName is the name of the Starlark runtime, the default.
const StarlarkName = "starlark"

// StarlarkConfig sets up the Starlark runtime.
type StarlarkConfig struct {
	Limits Limits
	// HTTPAllow lists the hosts (host or host:port) that the http_get
	// builtin may fetch from. Empty: scripts get no http_get at all.
	HTTPAllow []string
	// HTTPTimeout caps one http_get. Default 10s.
	HTTPTimeout time.Duration
	// HTTPMaxBytes caps the body http_get reads. Default 4 MiB.
	HTTPMaxBytes int64
	// Client makes http_get's requests; default a client of its own. Only
	// InProcess runtimes use it: a script's process makes its own.
	Client *http.Client
	// InProcess runs scripts on the calling goroutine, in this process,
	// instead of in a child process of their own. Limits.MaxMemory is then
	// not enforced, a Go stack overflow or an allocation the machine
	// cannot satisfy kills the whole process, and a builtin that runs long
	// (a huge string operation) holds its goroutine past Timeout. It is
	// for the deterministic simulation and for programs that cannot start
	// processes; a node never sets it.
	InProcess bool
}

// Starlark returns the Starlark runtime (go.starlark.net), sandboxed: a
// script sees only the builtins of the language, `json` (encode, decode),
// progress(fraction) (see ReportProgress) and, when HTTPAllow is set, http_get(url) → the body as a string. No
// files, no clock, no randomness; each call is held to the limits.
//
// A script defines three functions:
//
//	def split(input, n): return a list of parts (about n)
//	def run(part):       return the part's result
//	def merge(results):  return the job's output (results in part order)
//
// Inputs, parts, results and output are JSON values (dicts, lists,
// strings, numbers, booleans, None). `while`, sets and top-level
// statements are allowed; recursion is not.
//
// Unless InProcess is set, each call runs in a child process (the running
// binary started again; see docs/jobs.md): the process's address space is
// capped at Limits.MaxMemory beyond what it had at start, a call that
// does not answer within Limits.Timeout is killed with its process, and a
// process that dies — memory, stack, a fault — fails only the call, with
// ErrMemoryLimit, ErrStackLimit, ErrTimeLimit or ErrWorkerCrashed. The
// processes are reused from call to call and keep the scripts they
// loaded; the runtime returned is an io.Closer that stops the idle ones.
func Starlark(cfg StarlarkConfig) (Runtime, error) {
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits()
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	if cfg.HTTPTimeout <= 0 {
		cfg.HTTPTimeout = 10 * time.Second
	}
	if cfg.HTTPMaxBytes <= 0 {
		cfg.HTTPMaxBytes = 4 << 20
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.HTTPTimeout}
	}
	if cfg.InProcess {
		return &starlarkRuntime{cfg: cfg}, nil
	}
	return newIsolated(cfg)
}

type starlarkRuntime struct{ cfg StarlarkConfig }

func (r *starlarkRuntime) Name() string { return StarlarkName }

var fileOptions = &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true}

// scriptFile is the file name Starlark positions carry.
const scriptFile = "job.star"

func (r *starlarkRuntime) Load(ctx context.Context, script []byte) (Program, error) {
	predeclared := starlark.StringDict{"json": jsonModule(r.cfg.Limits.MaxDepth), "progress": starlark.NewBuiltin("progress", progressBuiltin)}
	if len(r.cfg.HTTPAllow) > 0 {
		predeclared["http_get"] = starlark.NewBuiltin("http_get", r.httpGet)
	}
	_, prog, err := starlark.SourceProgramOptions(fileOptions, scriptFile, script, predeclared.Has)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrScript, err)
	}
	p := &starlarkProgram{r: r}
	_, err = p.call(ctx, "load", func(th *starlark.Thread) (starlark.Value, error) {
		g, err := prog.Init(th, predeclared)
		if err != nil {
			return nil, err
		}
		g.Freeze() // parts run concurrently on these globals
		p.globals = g
		return starlark.None, nil
	})
	if err != nil {
		return nil, err
	}
	for _, fn := range []string{"split", "run", "merge"} {
		if _, ok := p.globals[fn].(starlark.Callable); !ok {
			return nil, fmt.Errorf("%w: %s: the script does not define %s(); a job script defines split(input, n), run(part) and merge(results)", ErrScript, scriptFile, fn)
		}
	}
	return p, nil
}

type starlarkProgram struct {
	r       *starlarkRuntime
	globals starlark.StringDict
}

// ctxLocal is the thread-local key of a call's context (for http_get).
const ctxLocal = "troupe.jobs.context"

// call runs fn on a fresh thread under the limits: the step limit, the
// wall-clock timeout and ctx's cancellation all cancel the thread.
func (p *starlarkProgram) call(ctx context.Context, what string, fn func(*starlark.Thread) (starlark.Value, error)) (starlark.Value, error) {
	lim := p.r.cfg.Limits
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	th := &starlark.Thread{Name: what, Print: func(*starlark.Thread, string) {}}
	th.SetMaxExecutionSteps(lim.MaxSteps)
	th.SetLocal(ctxLocal, ctx)
	var timedOut, stopped atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			timedOut.Store(true)
		}
		stopped.Store(true)
		th.Cancel(ctx.Err().Error())
	})
	defer stop()
	v, err := fn(th)
	if err == nil {
		return v, nil
	}
	switch {
	case th.ExecutionSteps() >= lim.MaxSteps:
		return nil, fmt.Errorf("%w: %s ran past %d steps%s (an endless loop?); %s", ErrStepLimit, what, lim.MaxSteps, where(err), stepHint(what))
	case timedOut.Load():
		return nil, fmt.Errorf("%w: %s ran past %v%s; %s", ErrTimeLimit, what, lim.Timeout, where(err), timeHint(what))
	case stopped.Load():
		return nil, fmt.Errorf("%s: %w", what, context.Cause(ctx))
	}
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		// One line first (for tables and logs), the traceback after it
		// (Status.Traceback).
		return nil, fmt.Errorf("%w: %s\n%s", ErrScript, evalLine(ee), strings.TrimSpace(ee.Backtrace()))
	}
	if errors.Is(err, ErrDepthLimit) || errors.Is(err, ErrResultTooLarge) {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %v", ErrScript, err)
}

// The hints of the limit errors: the configuration key and the flag of
// `node run` that raise the limit, and for a part also the way around it.
func stepHint(what string) string {
	h := "raise jobs.max_steps (node run --max-steps) on every node"
	if what == "run" {
		h += ", or cut the job into more, smaller parts (job submit --parts)"
	}
	return h
}

func timeHint(what string) string {
	h := "raise jobs.part_timeout (node run --part-timeout) on every node"
	if what == "run" {
		h += ", or cut the job into more, smaller parts (job submit --parts)"
	}
	return h
}

// evalLine is a Starlark error on one line: the innermost position in the
// script, its function and the message ("job.star:6:12: in merge: index 5
// out of range").
func evalLine(ee *starlark.EvalError) string {
	msg := strings.ReplaceAll(strings.TrimSpace(ee.Msg), "\n", " ")
	for i := len(ee.CallStack) - 1; i >= 0; i-- {
		if f := ee.CallStack[i]; f.Pos.IsValid() && f.Pos.Filename() != "<builtin>" {
			return fmt.Sprintf("%s: in %s: %s", f.Pos, f.Name, msg)
		}
	}
	return msg
}

// where names the script position an interrupted call was at.
func where(err error) string {
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		for i := len(ee.CallStack) - 1; i >= 0; i-- {
			if f := ee.CallStack[i]; f.Pos.IsValid() && f.Pos.Filename() != "<builtin>" {
				return " at " + f.Pos.String() + " in " + f.Name
			}
		}
	}
	return ""
}

func (p *starlarkProgram) Split(ctx context.Context, input []byte, n int) ([][]byte, error) {
	var out [][]byte
	_, err := p.call(ctx, "split", func(th *starlark.Thread) (starlark.Value, error) {
		in, err := p.fromJSON(th, input)
		if err != nil {
			return nil, fmt.Errorf("the input is not JSON: %w", err)
		}
		v, err := starlark.Call(th, p.globals["split"], starlark.Tuple{in, starlark.MakeInt(n)}, nil)
		if err != nil {
			return nil, inputHint(err, in)
		}
		seq, ok := v.(starlark.Sequence)
		if !ok {
			return nil, fmt.Errorf("split returned %s; it must return a list of parts", v.Type())
		}
		total := 0
		it := seq.Iterate()
		defer it.Done()
		var x starlark.Value
		for it.Next(&x) {
			b, err := p.toJSON(th, x)
			if err != nil {
				return nil, fmt.Errorf("part %d: %w", len(out), err)
			}
			if total += len(b); total > p.r.cfg.Limits.MaxResultBytes {
				return nil, fmt.Errorf("%w: the list of parts is over %d bytes of JSON; raise jobs.max_result_bytes on every node, or pass split less in each part", ErrResultTooLarge, p.r.cfg.Limits.MaxResultBytes)
			}
			out = append(out, b)
		}
		return v, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (p *starlarkProgram) Run(ctx context.Context, part []byte) ([]byte, error) {
	return p.apply(ctx, "run", "a part's result", func(th *starlark.Thread) (starlark.Value, error) {
		in, err := p.fromJSON(th, part)
		if err != nil {
			return nil, fmt.Errorf("the part is not JSON: %w", err)
		}
		return starlark.Call(th, p.globals["run"], starlark.Tuple{in}, nil)
	})
}

func (p *starlarkProgram) Merge(ctx context.Context, results [][]byte) ([]byte, error) {
	return p.apply(ctx, "merge", "the merged output", func(th *starlark.Thread) (starlark.Value, error) {
		list := make([]starlark.Value, len(results))
		for i, r := range results {
			v, err := p.fromJSON(th, r)
			if err != nil {
				return nil, fmt.Errorf("result %d is not JSON: %w", i, err)
			}
			list[i] = v
		}
		return starlark.Call(th, p.globals["merge"], starlark.Tuple{starlark.NewList(list)}, nil)
	})
}

// apply calls a script function and encodes its value as JSON within the
// size limit.
func (p *starlarkProgram) apply(ctx context.Context, what, value string, fn func(*starlark.Thread) (starlark.Value, error)) ([]byte, error) {
	var out []byte
	_, err := p.call(ctx, what, func(th *starlark.Thread) (starlark.Value, error) {
		v, err := fn(th)
		if err != nil {
			return nil, err
		}
		if out, err = p.toJSON(th, v); err != nil {
			return nil, err
		}
		return v, nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.r.cfg.Limits.checkSize(value, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (p *starlarkProgram) Close() error { return nil }

// fromJSON decodes a part, an input or a result, refusing one nested
// deeper than the depth limit before the recursive decoder sees it.
func (p *starlarkProgram) fromJSON(th *starlark.Thread, b []byte) (starlark.Value, error) {
	if len(b) == 0 {
		return starlark.None, nil
	}
	if max := p.r.cfg.Limits.MaxDepth; textDepth(string(b)) > max {
		return nil, depthError("the JSON text", max)
	}
	return starlark.Call(th, starjson.Module.Members["decode"], starlark.Tuple{starlark.String(b)}, nil)
}

// toJSON encodes a script's value, refusing one nested deeper than the
// depth limit before the recursive encoder sees it.
func (p *starlarkProgram) toJSON(th *starlark.Thread, v starlark.Value) ([]byte, error) {
	if max := p.r.cfg.Limits.MaxDepth; valueDepth(v, max) > max {
		return nil, depthError("the value", max)
	}
	s, err := starlark.Call(th, starjson.Module.Members["encode"], starlark.Tuple{v}, nil)
	if err != nil {
		return nil, fmt.Errorf("the value is not JSON: %w", err)
	}
	return []byte(string(s.(starlark.String))), nil
}

// inputHint adds to a script error in split what the input was: most such
// errors come from a job submitted without its input, or with another
// shape than the script reads.
func inputHint(err error, in starlark.Value) error {
	var ee *starlark.EvalError
	if !errors.As(err, &ee) || strings.Contains(ee.Msg, "job submit --input") {
		return err
	}
	if in == starlark.None {
		ee.Msg += " (the job has no input: split(input, n) got None; give the input the script reads: job submit --input)"
	} else {
		ee.Msg += fmt.Sprintf(" (split(input, n) got a %s as input; check job submit --input against what the script reads)", in.Type())
	}
	return err
}

// progressBuiltin is progress(fraction): how far the running part has got,
// a number from 0 to 1 (ReportProgress). Another value fails the call
// with ErrBadProgress. In split and merge it does nothing.
func progressBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &v); err != nil {
		return nil, err
	}
	f, ok := starlark.AsFloat(v)
	if !ok {
		return nil, fmt.Errorf("progress(%.40s): %w: got a %s; give a number from 0 (started) to 1 (done)", v.String(), ErrBadProgress, v.Type())
	}
	ctx, _ := th.Local(ctxLocal).(context.Context)
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ReportProgress(ctx, f); err != nil {
		return nil, fmt.Errorf("progress(%v): %w", v, err)
	}
	return starlark.None, nil
}

// httpGet is the http_get(url) builtin: a GET to an allowed host; the body
// comes back as a string, an HTTP status other than 2xx fails the call.
func (r *starlarkRuntime) httpGet(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var raw string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "url", &raw); err != nil {
		return nil, err
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("http_get: %q is not an http(s) URL", raw)
	}
	if !slices.Contains(r.cfg.HTTPAllow, u.Host) && !slices.Contains(r.cfg.HTTPAllow, u.Hostname()) {
		return nil, fmt.Errorf("%w: http_get: %s is not in the node's allow list %v", ErrHostNotAllowed, u.Host, r.cfg.HTTPAllow)
	}
	ctx, _ := th.Local(ctxLocal).(context.Context)
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("http_get: %w", err)
	}
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("http_get %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.cfg.HTTPMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("http_get %s: reading the body: %w", u.Redacted(), err)
	}
	if int64(len(body)) > r.cfg.HTTPMaxBytes {
		return nil, fmt.Errorf("http_get %s: the body is over %d bytes", u.Redacted(), r.cfg.HTTPMaxBytes)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("http_get %s: %s", u.Redacted(), resp.Status)
	}
	return starlark.String(body), nil
}

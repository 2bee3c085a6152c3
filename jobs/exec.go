package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ExecName is the name of the exec runtime.
const ExecName = "exec"

// ExecConfig sets up the exec runtime.
type ExecConfig struct {
	Limits Limits // Timeout, MaxMemory and MaxResultBytes apply; MaxSteps and MaxDepth do not
	// Command is the interpreter and its arguments; the script's file is
	// appended. Default: python3.
	Command []string
	// Dir holds the script files (the node's data directory). Default
	// os.TempDir(). A relative Dir is taken from the working directory
	// when Exec is called: scripts are written and run by absolute path
	// (the interpreter runs in Dir, so a relative path would be doubled).
	Dir string
}

// Exec returns the exec runtime: each call runs the interpreter on the
// script, writes one JSON request on its standard input and reads one JSON
// value from its standard output:
//
//	{"op": "split", "input": <input>, "n": <n>}   →  [<part>, ...]
//	{"op": "run", "part": <part>}                  →  <result>
//	{"op": "merge", "results": [<result>, ...]}    →  <output>
//
// A non-zero exit fails the call with the end of its standard error.
// While a part runs, a line "TROUPE_PROGRESS <fraction>" on the standard
// error (ProgressLine; a number from 0 to 1, flushed) reports how far it
// has got; a malformed one is ignored, and the worker logs why (once per
// part at warn level). Progress lines are not part of the error output. The
// interpreter's address space is capped at Limits.MaxMemory (RLIMIT_AS,
// set by this binary started again as a trampoline that then execs the
// interpreter, so the limit holds from its first instruction); a call
// that runs out of it fails with ErrMemoryLimit. The interpreter runs in
// a process group of its own, killed whole at the timeout or when the part
// is cancelled. It is
// not a sandbox: the interpreter runs with the node's rights, which is why
// nodes only offer it when configured to (Config.Disabled holds it by
// default).
func Exec(cfg ExecConfig) (Runtime, error) {
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits()
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%w: exec runtime: the interpreter starts through this binary, whose path is unknown: %v", ErrInvalidConfig, err)
	}
	if len(cfg.Command) == 0 {
		cfg.Command = []string{"python3"}
	}
	if _, err := exec.LookPath(cfg.Command[0]); err != nil {
		return nil, fmt.Errorf("%w: exec runtime: interpreter %q: %v", ErrInvalidConfig, cfg.Command[0], err)
	}
	if cfg.Dir == "" {
		cfg.Dir = os.TempDir()
	}
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, fmt.Errorf("%w: exec runtime: directory %q: %v", ErrInvalidConfig, cfg.Dir, err)
	}
	return &execRuntime{cfg: cfg, self: self}, nil
}

type execRuntime struct {
	cfg  ExecConfig
	self string // this binary: the trampoline that caps the memory
}

func (r *execRuntime) Name() string { return ExecName }

func (r *execRuntime) Load(_ context.Context, script []byte) (Program, error) {
	f, err := os.CreateTemp(r.cfg.Dir, "job-*.script")
	if err != nil {
		return nil, fmt.Errorf("exec runtime: writing the script: %w", err)
	}
	_, err = f.Write(script)
	if err = errors.Join(err, f.Close()); err != nil {
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("exec runtime: writing the script: %w", err)
	}
	return &execProgram{r: r, file: f.Name()}, nil
}

type execProgram struct {
	r    *execRuntime
	file string
}

func (p *execProgram) Close() error { return os.Remove(p.file) }

func (p *execProgram) call(ctx context.Context, op string, req map[string]any) ([]byte, error) {
	lim := p.r.cfg.Limits
	req["op"] = op
	in, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	args := append(append([]string{}, p.r.cfg.Command...), p.file)
	cmd := exec.CommandContext(ctx, p.r.self, args...)
	cmd.Args[0] = p.r.cfg.Command[0]
	cmd.Env = append(os.Environ(), childEnv+"=exec", childMemEnv+"="+strconv.FormatInt(lim.MaxMemory, 10))
	cmd.Dir = filepath.Dir(p.file)
	// The interpreter and whatever it starts form a process group, killed
	// whole: a grandchild holding the pipes cannot hold the part.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	cmd.Stdin = bytes.NewReader(in)
	var out, errOut capped
	out.max, errOut.max = lim.MaxResultBytes+1, 4096
	// Progress lines (ProgressLine) are taken out of the standard error.
	pw := &progressWriter{ctx: ctx, out: &errOut}
	cmd.Stdout, cmd.Stderr = &out, pw
	err = cmd.Run()
	pw.close()
	if cmd.Process != nil {
		// Whatever of the group outlived the interpreter goes too.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	stderr := strings.TrimSpace(errOut.String())
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, exhausted(fmt.Errorf("%w: %s ran past %v (jobs.part_timeout); its process group was killed", ErrTimeLimit, op, lim.Timeout))
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%s: %w", op, ctx.Err())
	case err != nil && outOfMemory(stderr):
		return nil, exhausted(fmt.Errorf("%w: %s used more than the memory budget of %s (jobs.max_memory): %s", ErrMemoryLimit, op, mib(lim.MaxMemory), lastLine(stderr)))
	case err != nil && signalled(err):
		return nil, exhausted(fmt.Errorf("%w: %s: the interpreter died (%v): %s", ErrWorkerCrashed, op, err, lastLine(stderr)))
	case err != nil:
		return nil, fmt.Errorf("%w: %s: %v: %s", ErrScript, op, err, stderr)
	}
	if out.Len() > lim.MaxResultBytes {
		return nil, fmt.Errorf("%w: %s wrote more than %d bytes", ErrResultTooLarge, op, lim.MaxResultBytes)
	}
	b := bytes.TrimSpace(out.Bytes())
	if !json.Valid(b) {
		return nil, fmt.Errorf("%w: %s: the standard output is not one JSON value: %.200q", ErrScript, op, b)
	}
	return b, nil
}

func (p *execProgram) Split(ctx context.Context, input []byte, n int) ([][]byte, error) {
	b, err := p.call(ctx, "split", map[string]any{"input": raw(input), "n": n})
	if err != nil {
		return nil, err
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(b, &parts); err != nil {
		return nil, fmt.Errorf("%w: split must print a JSON list of parts: %v", ErrScript, err)
	}
	out := make([][]byte, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out, nil
}

func (p *execProgram) Run(ctx context.Context, part []byte) ([]byte, error) {
	return p.call(ctx, "run", map[string]any{"part": raw(part)})
}

func (p *execProgram) Merge(ctx context.Context, results [][]byte) ([]byte, error) {
	rs := make([]json.RawMessage, len(results))
	for i, r := range results {
		rs[i] = raw(r)
	}
	return p.call(ctx, "merge", map[string]any{"results": rs})
}

// outOfMemory tells an interpreter's failure to allocate from its stderr:
// Python's MemoryError, the C library's and Go's messages.
func outOfMemory(stderr string) bool {
	for _, s := range []string{"MemoryError", "Cannot allocate memory", "out of memory", "std::bad_alloc"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// signalled reports whether a process ended by a signal (a fault, an abort,
// a kill from outside).
func signalled(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

func raw(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

// capped is a buffer that keeps at most max bytes and counts the rest.
type capped struct {
	bytes.Buffer
	max  int
	over int
}

func (c *capped) Write(b []byte) (int, error) {
	if room := c.max - c.Buffer.Len(); room < len(b) {
		c.over += len(b) - max(room, 0)
		if room > 0 {
			c.Buffer.Write(b[:room])
		}
		return len(b), nil
	}
	return c.Buffer.Write(b)
}

func (c *capped) Len() int { return c.Buffer.Len() + c.over }

package jobs

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// isolated is the Starlark runtime whose calls run in child processes
// (see Starlark). It keeps the idle processes for the next calls.
type isolated struct {
	cfg  StarlarkConfig
	pool *children
}

// children are a runtime's idle script processes.
type children struct {
	exe    string
	env    []string
	mu     sync.Mutex
	idle   []*child
	closed bool
}

// child is one script process and the parent's ends of its pipes.
type child struct {
	cmd     *exec.Cmd
	req     *os.File // the child's fd 3
	rep     *os.File // the child's fd 4
	rd      *bufio.Reader
	stderr  *os.File // an unlinked file: what the child wrote before it died
	scripts map[[32]byte]bool
	since   time.Time // idle since
}

// maxIdle bounds the idle processes a runtime keeps; idleFor is how long
// one is kept.
var (
	maxIdle = 2 * runtime.GOMAXPROCS(0)
	idleFor = 30 * time.Second
)

func newIsolated(cfg StarlarkConfig) (Runtime, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%w: the Starlark runtime runs scripts in processes of this binary, whose path is unknown: %v", ErrInvalidConfig, err)
	}
	conf, err := json.Marshal(childConfig{Limits: cfg.Limits, HTTPAllow: cfg.HTTPAllow, HTTPTimeout: cfg.HTTPTimeout, HTTPMaxBytes: cfg.HTTPMaxBytes})
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(), childEnv+"=starlark", childConfigEnv+"="+string(conf), "GOTRACEBACK=none")
	r := &isolated{cfg: cfg, pool: &children{exe: exe, env: env}}
	// A runtime nobody closes stops its idle processes when it is
	// collected (a node's runtimes are replaced on Reconfigure).
	runtime.AddCleanup(r, func(c *children) { c.close() }, r.pool)
	return r, nil
}

func (r *isolated) Name() string { return StarlarkName }

// Close stops the idle processes; calls still running finish, and their
// processes stop then. Later calls start processes of their own.
func (r *isolated) Close() error {
	r.pool.close()
	return nil
}

func (c *children) close() {
	c.mu.Lock()
	idle := c.idle
	c.idle, c.closed = nil, true
	c.mu.Unlock()
	for _, ch := range idle {
		ch.stop()
	}
}

// take returns an idle process, or starts one.
func (c *children) take() (*child, error) {
	c.mu.Lock()
	var stale []*child
	var ch *child
	now := time.Now()
	for len(c.idle) > 0 {
		last := c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		if now.Sub(last.since) > idleFor {
			stale = append(stale, last)
			continue
		}
		ch = last
		break
	}
	c.mu.Unlock()
	for _, s := range stale {
		s.stop()
	}
	if ch != nil {
		return ch, nil
	}
	return c.start()
}

// put returns a process after a call that left it sound.
func (c *children) put(ch *child) {
	ch.since = time.Now()
	c.mu.Lock()
	keep := !c.closed && len(c.idle) < maxIdle
	if keep {
		c.idle = append(c.idle, ch)
	}
	c.mu.Unlock()
	if !keep {
		ch.stop()
	}
}

func (c *children) start() (*child, error) {
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("jobs: starting a script process: %w", err)
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, fmt.Errorf("jobs: starting a script process: %w", err)
	}
	stderr, err := stderrFile()
	if err != nil {
		for _, f := range []*os.File{reqR, reqW, repR, repW} {
			f.Close()
		}
		return nil, fmt.Errorf("jobs: starting a script process: %w", err)
	}
	cmd := exec.Command(c.exe)
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.ExtraFiles = []*os.File{reqR, repW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	reqR.Close()
	repW.Close()
	if err != nil {
		reqW.Close()
		repR.Close()
		stderr.Close()
		return nil, fmt.Errorf("jobs: starting a script process (%s): %w", c.exe, err)
	}
	return &child{cmd: cmd, req: reqW, rep: repR, rd: bufio.NewReader(repR), stderr: stderr, scripts: map[[32]byte]bool{}}, nil
}

// stderrFile is where a script process writes its standard error (what
// its runtime prints when it dies): a memory file, so that a node whose
// image has no writable /tmp (the FROM scratch image) still runs scripts,
// or, where memfd_create is missing, a removed temporary file.
func stderrFile() (*os.File, error) {
	if fd, err := unix.MemfdCreate("troupe-job-stderr", unix.MFD_CLOEXEC); err == nil {
		return os.NewFile(uintptr(fd), "troupe-job-stderr"), nil
	}
	f, err := os.CreateTemp("", "troupe-job-stderr-*")
	if err != nil {
		return nil, fmt.Errorf("no memory file and no temporary file for its standard error: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// stop kills the process and its group and reaps it.
func (ch *child) stop() {
	ch.kill()
	ch.stderr.Close()
}

func (ch *child) kill() {
	_ = syscall.Kill(-ch.cmd.Process.Pid, syscall.SIGKILL)
	ch.req.Close()
	ch.rep.Close()
	_ = ch.cmd.Wait()
}

// died reads why a killed process died, as the error that fails the call,
// and closes what was left of it.
func (ch *child) died(what string, lim Limits) error {
	buf := make([]byte, 64<<10)
	n, _ := ch.stderr.ReadAt(buf, 0)
	ch.stderr.Close()
	out := string(buf[:n])
	state := ch.cmd.ProcessState.String()
	switch {
	case strings.Contains(out, "fatal error: stack overflow") || strings.Contains(out, "stack exceeds"):
		return exhausted(fmt.Errorf("%w: %s overflowed its stack (a value nested too deep?); its process died", ErrStackLimit, what))
	case strings.Contains(out, "fatal error: out of memory") && strings.Contains(out, "runtime.newstack("):
		// The stack's growth, not the heap, ran into the address-space
		// cap: the recursion is the cause, as with a stack overflow.
		return exhausted(fmt.Errorf("%w: %s overflowed its stack (a value nested too deep?): growing it hit the memory budget of %s (jobs.max_memory); its process died", ErrStackLimit, what, mib(lim.MaxMemory)))
	case strings.Contains(out, "out of memory") || strings.Contains(out, "cannot allocate memory") ||
		strings.Contains(out, "failed to create new OS thread") || strings.Contains(out, "ThreadSanitizer failed to allocate") ||
		strings.Contains(out, "address space collisions"):
		return exhausted(fmt.Errorf("%w: %s used more than the memory budget of %s (jobs.max_memory); its process was stopped", ErrMemoryLimit, what, mib(lim.MaxMemory)))
	}
	return exhausted(fmt.Errorf("%w: %s: the script's process died (%s): %s", ErrWorkerCrashed, what, state, lastLine(out)))
}

// lastLine is the last non-empty line of s, at most 300 bytes of it.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if len(l) > 300 {
		l = l[:300] + "…"
	}
	if l == "" {
		return "no output"
	}
	return l
}

// exhaustedError marks an error that stopped the process running a call
// (memory, stack, time, a crash) rather than one the script made: the
// part may fare better on another worker, once (see docs/jobs.md, poison
// parts).
type exhaustedError struct{ err error }

func (e *exhaustedError) Error() string { return e.err.Error() }
func (e *exhaustedError) Unwrap() error { return e.err }

func exhausted(err error) error { return &exhaustedError{err} }

// isExhausted reports whether err stopped the process that ran a call.
func isExhausted(err error) bool {
	var e *exhaustedError
	return errors.As(err, &e)
}

// grace is how long past Limits.Timeout a process may take to answer
// before it is killed: the process stops its own script at Timeout and
// answers within microseconds unless a single builtin holds it.
func grace(timeout time.Duration) time.Duration {
	return min(max(timeout/10, 100*time.Millisecond), 2*time.Second)
}

// call runs one request in a process. A process that does not answer by
// the deadline, or whose call ctx cancels, is killed; one that dies fails
// the call with the reason.
func (r *isolated) call(ctx context.Context, what string, req *childRequest, script []byte) (*childReply, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ch, err := r.pool.take()
	if err != nil {
		return nil, err
	}
	lim := r.cfg.Limits
	deadline := time.Now().Add(lim.Timeout + grace(lim.Timeout))
	_ = ch.rep.SetReadDeadline(deadline)
	_ = ch.req.SetWriteDeadline(deadline)
	stopRead := context.AfterFunc(ctx, func() { _ = ch.rep.SetReadDeadline(time.Now()) })
	reply, err := ch.roundTrip(ctx, req, script)
	stopRead()
	if err == nil {
		_ = ch.rep.SetReadDeadline(time.Time{})
		_ = ch.req.SetWriteDeadline(time.Time{})
		r.pool.put(ch)
		return reply, nil
	}
	ch.kill()
	switch {
	case ctx.Err() != nil:
		ch.stderr.Close()
		return nil, fmt.Errorf("%s: %w", what, ctx.Err())
	case errors.Is(err, os.ErrDeadlineExceeded):
		ch.stderr.Close()
		return nil, exhausted(fmt.Errorf("%w: %s ran past %v (jobs.part_timeout) and did not stop; its process was killed", ErrTimeLimit, what, lim.Timeout))
	}
	return nil, ch.died(what, lim)
}

// roundTrip sends a request and reads its reply; a process that does not
// hold the script gets it and the request again. Progress frames that come
// before the reply go to ctx's progress function.
func (ch *child) roundTrip(ctx context.Context, req *childRequest, script []byte) (*childReply, error) {
	if !ch.scripts[req.Sum] {
		req.Script = script
	}
	for {
		if err := writeFrame(ch.req, req); err != nil {
			return nil, err
		}
		reply, err := ch.readReply(ctx)
		if err != nil {
			return nil, err
		}
		if reply.Unknown && req.Script == nil {
			req.Script = script
			continue
		}
		if reply.Unknown {
			return nil, errors.New("jobs: the script's process refused the script")
		}
		ch.scripts[req.Sum] = true
		return reply, nil
	}
}

// readReply reads the reply to the request in hand, passing the progress
// frames before it to ctx's progress function.
func (ch *child) readReply(ctx context.Context) (*childReply, error) {
	for {
		var reply childReply
		if err := readFrame(ch.rd, &reply); err != nil {
			return nil, err
		}
		if reply.Progress == nil {
			return &reply, nil
		}
		if err := ReportProgress(ctx, *reply.Progress); err != nil {
			ignoreProgress(ctx, "the script's process reported "+err.Error())
		}
	}
}

func (r *isolated) Load(ctx context.Context, script []byte) (Program, error) {
	p := &isolatedProgram{r: r, script: script, sum: sha256.Sum256(script)}
	if _, err := p.do(ctx, "load", &childRequest{Op: "load"}); err != nil {
		return nil, err
	}
	return p, nil
}

type isolatedProgram struct {
	r      *isolated
	script []byte
	sum    [32]byte
}

func (p *isolatedProgram) do(ctx context.Context, what string, req *childRequest) (*childReply, error) {
	req.Sum = p.sum
	reply, err := p.r.call(ctx, what, req, p.script)
	if err != nil {
		return nil, err
	}
	if reply.Err != "" {
		return nil, fromReply(reply)
	}
	return reply, nil
}

func (p *isolatedProgram) Split(ctx context.Context, input []byte, n int) ([][]byte, error) {
	reply, err := p.do(ctx, "split", &childRequest{Op: "split", Data: input, N: n})
	if err != nil {
		return nil, err
	}
	return reply.Parts, nil
}

func (p *isolatedProgram) Run(ctx context.Context, part []byte) ([]byte, error) {
	reply, err := p.do(ctx, "run", &childRequest{Op: "run", Data: part})
	if err != nil {
		return nil, err
	}
	return reply.Out, nil
}

func (p *isolatedProgram) Merge(ctx context.Context, results [][]byte) ([]byte, error) {
	reply, err := p.do(ctx, "merge", &childRequest{Op: "merge", Results: results})
	if err != nil {
		return nil, err
	}
	return reply.Out, nil
}

func (p *isolatedProgram) Close() error { return nil }

var _ io.Closer = (*isolated)(nil)

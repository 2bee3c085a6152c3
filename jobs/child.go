package jobs

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// A job script's process is the running binary started again with
// childEnv set: package jobs' init sees it before main (or a test's
// TestMain) runs, so every binary that links jobs can host scripts without
// a hook of its own. "starlark" serves Starlark calls over fds 3 and 4;
// "exec" caps the address space and execs an interpreter (the exec
// runtime's trampoline).
const (
	childEnv       = "TROUPE_JOBS_CHILD"
	childConfigEnv = "TROUPE_JOBS_CHILD_CONFIG" // starlark: the childConfig, JSON
	childMemEnv    = "TROUPE_JOBS_CHILD_MEMORY" // exec: the address-space limit in bytes
)

func init() {
	switch os.Getenv(childEnv) {
	case "":
		return
	case "starlark":
		os.Exit(starlarkChild())
	case "exec":
		os.Exit(execTrampoline())
	default:
		fmt.Fprintf(os.Stderr, "jobs: %s=%q; want starlark or exec\n", childEnv, os.Getenv(childEnv))
		os.Exit(2)
	}
}

// childConfig is what a Starlark process needs of its runtime's config.
type childConfig struct {
	Limits       Limits
	HTTPAllow    []string
	HTTPTimeout  time.Duration
	HTTPMaxBytes int64
}

// childRequest is one call, parent → child.
type childRequest struct {
	Op      string   // load, split, run or merge
	Sum     [32]byte // the script's SHA-256
	Script  []byte   // the script, when the child may not hold it
	Data    []byte   // split: the input; run: the part
	N       int      // split: n
	Results [][]byte // merge
}

// childReply is a call's outcome, child → parent.
type childReply struct {
	Out     []byte
	Parts   [][]byte
	Err     string // "" on success
	Kind    string // the sentinel Err wraps (childKinds)
	Unknown bool   // the child does not hold the script: send it
	// Progress, when set, makes this frame a progress report of the call
	// in hand (progress(fraction)), not its reply: the reply follows.
	Progress *float64 `json:",omitempty"`
}

// childProgressEvery is the least time between two progress frames of a
// script process: values in between are dropped, the next one after it
// goes (the worker coalesces again before the network).
const childProgressEvery = 50 * time.Millisecond

// childKinds are the errors a child's reply can name.
var childKinds = []error{ErrScript, ErrStepLimit, ErrTimeLimit, ErrResultTooLarge, ErrHostNotAllowed, ErrDepthLimit, ErrInvalidJob}

func kindOf(err error) string {
	for _, k := range childKinds {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	return ""
}

// remoteError is an error that crossed from a child: its text, and the
// sentinel it wrapped there.
type remoteError struct {
	msg string
	is  error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.is }

func fromReply(r *childReply) error {
	for _, k := range childKinds {
		if k.Error() == r.Kind {
			return &remoteError{msg: r.Err, is: k}
		}
	}
	return errors.New(r.Err)
}

// writeFrame and readFrame carry one JSON value with a length before it.
func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err = w.Write(append(frame, b...))
	return err
}

// maxFrame bounds a frame a reader accepts: a request carries at most a
// script, an input and the results of a job (each a few MiB).
const maxFrame = 1 << 30

func readFrame(r io.Reader, v any) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxFrame {
		return fmt.Errorf("jobs: a frame of %d bytes from the script's process", size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// starlarkChild is a Starlark process: it caps its own memory, then
// answers calls one at a time until its parent closes fd 3 or dies.
func starlarkChild() int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(os.Getenv(childConfigEnv)), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "jobs: script process: bad %s: %v\n", childConfigEnv, err)
		return 2
	}
	if err := capMemory(cfg.Limits.MaxMemory); err != nil {
		fmt.Fprintf(os.Stderr, "jobs: script process: %v\n", err)
		return 2
	}
	// The collector works harder as the heap nears the budget, and a
	// goroutine's stack stops well before it (a clean "stack overflow").
	debug.SetMemoryLimit(cfg.Limits.MaxMemory)
	debug.SetMaxStack(int(min(cfg.Limits.MaxMemory/16, 64<<20)))
	in, out := os.NewFile(3, "requests"), os.NewFile(4, "replies")
	if in == nil || out == nil {
		fmt.Fprintln(os.Stderr, "jobs: script process: fds 3 and 4 are not open")
		return 2
	}
	go watchParent(os.Getppid())
	// The in-process runtime below enforces the steps, the timeout and the
	// depth; the memory is the rlimit's.
	r := &starlarkRuntime{cfg: StarlarkConfig{Limits: cfg.Limits.withDefaults(), HTTPAllow: cfg.HTTPAllow,
		HTTPTimeout: cfg.HTTPTimeout, HTTPMaxBytes: cfg.HTTPMaxBytes, Client: &http.Client{Timeout: cfg.HTTPTimeout}}}
	progs := map[[32]byte]Program{}
	var order [][32]byte // least recently used first
	rd, wr := bufio.NewReader(in), bufio.NewWriter(out)
	var last time.Time
	progress := func(f float64) {
		if now := time.Now(); now.Sub(last) >= childProgressEvery {
			last = now
			if writeFrame(wr, &childReply{Progress: &f}) == nil {
				_ = wr.Flush()
			}
		}
	}
	for {
		var req childRequest
		if err := readFrame(rd, &req); err != nil {
			if errors.Is(err, io.EOF) {
				return 0
			}
			fmt.Fprintf(os.Stderr, "jobs: script process: reading a request: %v\n", err)
			return 2
		}
		reply := serve(r, progs, &order, &req, progress)
		if err := writeFrame(wr, reply); err != nil {
			return 2
		}
		if err := wr.Flush(); err != nil {
			return 2
		}
	}
}

// serve runs one call on this process's programs; a part's progress goes
// to progress, which runs on this goroutine while the call does.
func serve(r *starlarkRuntime, progs map[[32]byte]Program, order *[][32]byte, req *childRequest, progress func(float64)) *childReply {
	ctx := context.Background()
	prog, ok := progs[req.Sum]
	if !ok {
		if req.Script == nil || sha256.Sum256(req.Script) != req.Sum {
			return &childReply{Unknown: true}
		}
		var err error
		if prog, err = r.Load(ctx, req.Script); err != nil {
			return &childReply{Err: err.Error(), Kind: kindOf(err)}
		}
		progs[req.Sum] = prog
		if len(*order) >= maxPrograms {
			delete(progs, (*order)[0])
			*order = (*order)[1:]
		}
	} else {
		*order = slices.DeleteFunc(*order, func(s [32]byte) bool { return s == req.Sum })
	}
	*order = append(*order, req.Sum)
	var reply childReply
	var err error
	switch req.Op {
	case "load":
	case "split":
		reply.Parts, err = prog.Split(ctx, req.Data, req.N)
	case "run":
		reply.Out, err = prog.Run(WithProgress(ctx, progress), req.Data)
	case "merge":
		reply.Out, err = prog.Merge(ctx, req.Results)
	default:
		err = fmt.Errorf("jobs: script process: unknown op %q", req.Op)
	}
	if err != nil {
		return &childReply{Err: err.Error(), Kind: kindOf(err)}
	}
	return &reply
}

// watchParent ends this process when its parent has gone (it would be
// adopted by init): a script's process never outlives its node.
func watchParent(ppid int) {
	for range time.Tick(500 * time.Millisecond) {
		if os.Getppid() != ppid {
			os.Exit(3)
		}
	}
}

// heapArena is the Go runtime's unit of heap address space on 64-bit Linux.
const heapArena = 64 << 20

// capMemory sets RLIMIT_AS to the address space this process has now plus
// budget (and a heap arena): a mapping beyond it fails, and the Go runtime dies with "out of
// memory" — also for a single allocation of any size.
func capMemory(budget int64) error {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return fmt.Errorf("reading its size: %w", err)
	}
	pages, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
	if err != nil {
		return fmt.Errorf("reading its size: %w", err)
	}
	// The Go runtime takes address space for its heap in arenas of 64
	// MiB: one arena of headroom keeps the budget the memory a script can
	// use, not the address space the runtime happened to round it up to.
	limit := uint64(pages*int64(os.Getpagesize()) + budget*raceFactor + heapArena)
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		return fmt.Errorf("setting RLIMIT_AS to %d: %w", limit, err)
	}
	return nil
}

// execTrampoline caps the address space at the budget in childMemEnv and
// replaces this process with the interpreter named by its arguments: the
// limit holds from the interpreter's first instruction. Everything that
// allocates happens before the limit is set (a binary built with the race
// detector could not map its shadow memory after it).
func execTrampoline() int {
	budget, err := strconv.ParseUint(os.Getenv(childMemEnv), 10, 64)
	if err != nil || len(os.Args) < 2 {
		fmt.Fprintf(os.Stderr, "jobs: exec trampoline: %s=%q, args %q\n", childMemEnv, os.Getenv(childMemEnv), os.Args)
		return 2
	}
	path, err := exec.LookPath(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "jobs: exec trampoline: %v\n", err)
		return 127
	}
	// The interpreter gets the node's environment without Troupe's own
	// variables: this trampoline's, and the node's configuration
	// (TROUPE_API_TOKEN, the gossip key, …), which a script has no use for.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "TROUPE_")
	})
	argv0, err1 := syscall.BytePtrFromString(path)
	argv, err2 := syscall.SlicePtrFromStrings(os.Args[1:])
	envv, err3 := syscall.SlicePtrFromStrings(env)
	if err := errors.Join(err1, err2, err3); err != nil {
		fmt.Fprintf(os.Stderr, "jobs: exec trampoline: %v\n", err)
		return 2
	}
	lim := syscall.Rlimit{Cur: budget, Max: budget}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRLIMIT, syscall.RLIMIT_AS, uintptr(unsafe.Pointer(&lim)), 0); e != 0 {
		fmt.Fprintf(os.Stderr, "jobs: exec trampoline: setting RLIMIT_AS: %v\n", e)
		return 2
	}
	_, _, e := syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafe.Pointer(argv0)), uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])))
	fmt.Fprintf(os.Stderr, "jobs: exec trampoline: %s: %v\n", path, e)
	return 127
}

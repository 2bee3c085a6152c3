package jobs

import (
	"cmp"
	"context"
	"fmt"
	"time"
)

// Runtime runs job scripts: it loads a script into a [Program] whose
// split, run and merge functions the protocol calls. Every call of a
// Runtime or Program runs on a goroutine of the jobs protocol's worker
// pool, never on its mailbox, and may block until its limits stop it.
type Runtime interface {
	// Name is the runtime's name in a job's "runtime" field.
	Name() string
	// Load checks and prepares a script. It may run the script's top level
	// (under the runtime's limits) and fails with a clear error — for a
	// Starlark syntax error, with the file position.
	Load(ctx context.Context, script []byte) (Program, error)
}

// Program is a loaded job script. Its methods may be called concurrently
// from several goroutines; each call stops at its context's end and at
// the runtime's limits. Values in and out are JSON documents.
type Program interface {
	// Split cuts the job's input into parts, asking for about n of them.
	Split(ctx context.Context, input []byte, n int) ([][]byte, error)
	// Run computes one part's result. It must be a deterministic function
	// of the part: a part may run twice (after a failure, or as a backup
	// copy near the end of a job), and either result may be kept.
	Run(ctx context.Context, part []byte) ([]byte, error)
	// Merge combines the parts' results, in part order, into the output.
	Merge(ctx context.Context, results [][]byte) ([]byte, error)
	// Close releases what Load prepared.
	Close() error
}

// Limits bound every call of a script, in any runtime.
type Limits struct {
	// MaxSteps caps the Starlark execution steps of one call (split, one
	// part, or merge). Default 100 million (a few seconds of work).
	MaxSteps uint64
	// Timeout caps the wall-clock time of one call. Default 30s.
	Timeout time.Duration
	// MaxResultBytes caps a part's result, the list of parts and the
	// merged output, as JSON. Default 1 MiB (transport envelopes carry at
	// most 4 MiB).
	MaxResultBytes int
	// MaxMemory caps the memory of one call, in bytes: the address
	// space its process may add once it has started (RLIMIT_AS), so that
	// even a single huge allocation fails. The Starlark runtime enforces
	// it unless StarlarkConfig.InProcess is set; the exec runtime always.
	// Zero means the default, 512 MiB.
	MaxMemory int64
	// MaxDepth caps the nesting of JSON texts and values: json.decode and
	// json.encode in scripts, parts, results and the output. Zero means the
	// default, 1000.
	MaxDepth int
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxSteps:       100_000_000,      // about 5 s of Starlark on one core
		Timeout:        30 * time.Second, // well above MaxSteps' time
		MaxResultBytes: 1 << 20,          // a quarter of an envelope
		MaxMemory:      512 << 20,        // a few per core on a small machine
		MaxDepth:       1000,             // far beyond real data; a few MiB of stack
	}
}

// withDefaults fills the fields that were added after the first three, so
// that Limits written with those alone keep working.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	l.MaxMemory = cmp.Or(l.MaxMemory, d.MaxMemory)
	l.MaxDepth = cmp.Or(l.MaxDepth, d.MaxDepth)
	return l
}

// Validate reports a limit out of range (MaxMemory and MaxDepth 0: the
// default); the message after ErrInvalidConfig starts with the field.
func (l Limits) Validate() error {
	switch {
	case l.MaxSteps == 0:
		return fmt.Errorf("%w: Limits.MaxSteps is 0; it must be positive", ErrInvalidConfig)
	case l.Timeout <= 0:
		return fmt.Errorf("%w: Limits.Timeout is %v; it must be positive", ErrInvalidConfig, l.Timeout)
	case l.MaxResultBytes <= 0 || l.MaxResultBytes > 3<<20:
		return fmt.Errorf("%w: Limits.MaxResultBytes is %d; use 1 to %d (envelopes carry 4 MiB)", ErrInvalidConfig, l.MaxResultBytes, 3<<20)
	case l.MaxMemory != 0 && (l.MaxMemory < MinMemory || l.MaxMemory > 1<<40):
		return fmt.Errorf("%w: Limits.MaxMemory is %d bytes; use %d (%s) to 1 TiB", ErrInvalidConfig, l.MaxMemory, MinMemory, mib(MinMemory))
	case l.MaxDepth != 0 && (l.MaxDepth < 1 || l.MaxDepth > 100_000):
		return fmt.Errorf("%w: Limits.MaxDepth is %d; use 1 to 100000", ErrInvalidConfig, l.MaxDepth)
	}
	return nil
}

// MinMemory is the smallest Limits.MaxMemory: a Starlark process needs a
// few MiB to start and load a script.
const MinMemory = 32 << 20

// mib writes a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

// checkSize refuses a value over the result limit.
func (l Limits) checkSize(what string, b []byte) error {
	if len(b) > l.MaxResultBytes {
		return fmt.Errorf("%w: %s is %d bytes of JSON; the limit is %d (raise jobs.max_result_bytes on every node)", ErrResultTooLarge, what, len(b), l.MaxResultBytes)
	}
	return nil
}

// RunLocal runs a whole job in this goroutine — split, every part in turn,
// merge — as a single node would: the reference a distributed run must
// equal.
func RunLocal(ctx context.Context, rt Runtime, script, input []byte, n int) ([]byte, error) {
	prog, err := rt.Load(ctx, script)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer prog.Close()
	parts, err := prog.Split(ctx, input, n)
	if err != nil {
		return nil, fmt.Errorf("split: %w", err)
	}
	results := make([][]byte, len(parts))
	for i, part := range parts {
		if results[i], err = prog.Run(ctx, part); err != nil {
			return nil, fmt.Errorf("run part %d: %w", i, err)
		}
	}
	out, err := prog.Merge(ctx, results)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	return out, nil
}

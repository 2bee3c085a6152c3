package jobs

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"time"
)

// Config sets up the jobs protocol on one node. Start from
// [DefaultConfig].
type Config struct {
	// Runtimes are the script runtimes this node runs, by Runtime.Name.
	// Default: Starlark with DefaultLimits and no http_get.
	Runtimes []Runtime
	// Disabled names runtimes that exist but are off on this node, so that
	// a job asking for one is refused with ErrRuntimeDisabled rather than
	// ErrUnknownRuntime. Default: "exec" (see Exec).
	Disabled []string
	// Slots is how many parts run at once on this node. Default GOMAXPROCS.
	Slots int
	// Prefetch is how many parts a worker holds beyond its running ones,
	// so that the next part is there when one finishes (it hides a round
	// trip to the leader). Default 1; -1 for none.
	Prefetch int
	// PartsPerMember is the number of parts asked of split when a job
	// leaves it to the system: this many per live member, as the contact
	// counts them when the job is submitted. Default 4.
	PartsPerMember int
	// MaxParts caps the parts of one job. Default 10000.
	MaxParts int
	// MaxScriptBytes and MaxInputBytes cap a submission. Defaults 256 KiB
	// and 1 MiB.
	MaxScriptBytes, MaxInputBytes int
	// Backup starts a second copy of a part near the end of a job, on an
	// idle worker, once the part has run Backup times longer than the
	// job's mean part so far (MapReduce's backup tasks): a slow node does
	// not hold the job back. Default 2; -1 turns backups off.
	Backup float64
	// Tick is the leader's period for checking backups, and the contact's
	// for asking the raft group why there is no leader while a job waits
	// (Status.Waiting), for sending again what waits in the outbox and for
	// passing on parts' progress. The tick runs only while there is such
	// work: an idle node's jobs protocol fires no timer. Default 50ms.
	Tick time.Duration
	// Settle is how long a new leader waits for every live member to say
	// which parts it runs before it assigns parts anyway (a member that
	// does not answer may be gone). Default 1s.
	Settle time.Duration
	// Retain is how many ended jobs the contact keeps for status queries.
	// Default 1000.
	Retain int
	// Inline runs the scripts (load, split, parts, merge) on the protocol's
	// mailbox instead of the worker pool's goroutines; their outcomes still
	// come back as later events. A script then holds up the protocol while
	// it runs, so this is for deterministic simulation (package
	// simulation), where nothing may run off the scheduler's goroutine.
	Inline bool
}

// DefaultConfig returns the defaults of every field.
func DefaultConfig() Config {
	return Config{
		Disabled:       []string{ExecName},                   // off unless configured
		Slots:          min(runtime.GOMAXPROCS(0), maxSlots), // one part per core
		Prefetch:       1,                                    // one part waits per worker
		PartsPerMember: 4,                                    // enough to balance uneven nodes
		MaxParts:       10000,                                // a job's state stays small
		MaxScriptBytes: 256 << 10,                            // parsed in well under 10 ms
		MaxInputBytes:  1 << 20,                              // fits one envelope with room
		Backup:         2,                                    // a part twice as slow as the mean
		Tick:           50 * time.Millisecond,                // backups start within a tick
		Settle:         time.Second,                          // members answer in a round trip
		Retain:         1000,                                 // ended jobs kept for status
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Runtimes == nil {
		rt, _ := Starlark(StarlarkConfig{})
		c.Runtimes = []Runtime{rt}
	}
	if c.Disabled == nil {
		c.Disabled = d.Disabled
	}
	c.Slots = cmp.Or(c.Slots, d.Slots)
	c.Prefetch = cmp.Or(c.Prefetch, d.Prefetch)
	c.PartsPerMember = cmp.Or(c.PartsPerMember, d.PartsPerMember)
	c.MaxParts = cmp.Or(c.MaxParts, d.MaxParts)
	c.MaxScriptBytes = cmp.Or(c.MaxScriptBytes, d.MaxScriptBytes)
	c.MaxInputBytes = cmp.Or(c.MaxInputBytes, d.MaxInputBytes)
	c.Backup = cmp.Or(c.Backup, d.Backup)
	c.Tick = cmp.Or(c.Tick, d.Tick)
	c.Settle = cmp.Or(c.Settle, d.Settle)
	c.Retain = cmp.Or(c.Retain, d.Retain)
	return c
}

// Validate reports every field out of range, joined (errors.Join), each
// wrapping ErrInvalidConfig and starting with the field's name.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	names := map[string]bool{}
	for _, rt := range c.Runtimes {
		if rt == nil {
			bad("Runtimes has a nil Runtime")
			continue
		}
		if names[rt.Name()] {
			bad("Runtimes has two runtimes named %q", rt.Name())
		}
		names[rt.Name()] = true
	}
	for _, f := range []struct {
		name   string
		v, max int
		note   string
	}{{"Slots", c.Slots, maxSlots, ""}, {"PartsPerMember", c.PartsPerMember, 1000, ""}, {"MaxParts", c.MaxParts, 1_000_000, ""},
		{"MaxScriptBytes", c.MaxScriptBytes, 3 << 20, " (envelopes carry 4 MiB)"}, {"MaxInputBytes", c.MaxInputBytes, 3 << 20, " (envelopes carry 4 MiB)"},
		{"Retain", c.Retain, 1_000_000, ""}} {
		if f.v < 1 || f.v > f.max {
			bad("%s is %d; use 1 to %d%s", f.name, f.v, f.max, f.note)
		}
	}
	if c.Prefetch < -1 || c.Prefetch > 1024 {
		bad("Prefetch is %d; use -1 (none) to 1024", c.Prefetch)
	}
	if c.Backup != -1 && (c.Backup < 1 || c.Backup > 1000) {
		bad("Backup is %v; use -1 (off) or 1 to 1000", c.Backup)
	}
	if c.Settle <= 0 {
		bad("Settle is %v; it must be positive", c.Settle)
	}
	if c.Tick <= 0 {
		bad("Tick is %v; it must be positive", c.Tick)
	}
	return errors.Join(errs...)
}

// maxSlots bounds Config.Slots: parts running at once on one node.
const maxSlots = 1024

func unknownRuntime(name string, rts map[string]Runtime) error {
	return fmt.Errorf("%w: %q; this node runs %v", ErrUnknownRuntime, name, slices.Sorted(maps.Keys(rts)))
}

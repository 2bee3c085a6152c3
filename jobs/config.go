package jobs

import (
	"cmp"
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
	// (Status.Waiting). Default 50ms.
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
		Disabled:       []string{ExecName},    // off unless configured
		Slots:          runtime.GOMAXPROCS(0), // one part per core
		Prefetch:       1,                     // one part waits per worker
		PartsPerMember: 4,                     // enough to balance uneven nodes
		MaxParts:       10000,                 // a job's state stays small
		MaxScriptBytes: 256 << 10,             // parsed in well under 10 ms
		MaxInputBytes:  1 << 20,               // fits one envelope with room
		Backup:         2,                     // a part twice as slow as the mean
		Tick:           50 * time.Millisecond, // backups start within a tick
		Settle:         time.Second,           // members answer in a round trip
		Retain:         1000,                  // ended jobs kept for status
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

// Validate reports the first field out of range.
func (c Config) Validate() error {
	names := map[string]bool{}
	for _, rt := range c.Runtimes {
		if rt == nil {
			return fmt.Errorf("%w: a nil Runtime", ErrInvalidConfig)
		}
		if names[rt.Name()] {
			return fmt.Errorf("%w: two runtimes named %q", ErrInvalidConfig, rt.Name())
		}
		names[rt.Name()] = true
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"Slots", c.Slots}, {"PartsPerMember", c.PartsPerMember}, {"MaxParts", c.MaxParts},
		{"MaxScriptBytes", c.MaxScriptBytes}, {"MaxInputBytes", c.MaxInputBytes}, {"Retain", c.Retain}} {
		if f.v < 1 {
			return fmt.Errorf("%w: %s is %d; it must be at least 1", ErrInvalidConfig, f.name, f.v)
		}
	}
	if c.Prefetch < -1 {
		return fmt.Errorf("%w: Prefetch is %d; use -1 (none) or more", ErrInvalidConfig, c.Prefetch)
	}
	if c.Backup != -1 && c.Backup < 1 {
		return fmt.Errorf("%w: Backup is %v; use -1 (off) or 1 and above", ErrInvalidConfig, c.Backup)
	}
	if c.Settle <= 0 {
		return fmt.Errorf("%w: Settle is %v; it must be positive", ErrInvalidConfig, c.Settle)
	}
	if c.Tick <= 0 {
		return fmt.Errorf("%w: Tick is %v; it must be positive", ErrInvalidConfig, c.Tick)
	}
	return nil
}

func unknownRuntime(name string, rts map[string]Runtime) error {
	return fmt.Errorf("%w: %q; this node runs %v", ErrUnknownRuntime, name, slices.Sorted(maps.Keys(rts)))
}

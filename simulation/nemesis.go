package simulation

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/transport/sim"
)

// Nemesis injects faults on a schedule drawn from the run's seed: crashes
// and restarts (from the data dirs), partitions and heals, bursts of loss,
// duplication and reordering, and clock skew. Faults begin between From
// and Until, one every Every on average (exponential gaps); at Until every
// partition heals, the network's faults return to the scenario's and every
// crashed node restarts (unless CrashStop), so the run ends with a quiet
// period in which the system must recover.
type Nemesis struct {
	From, Until time.Duration
	Every       time.Duration

	// Weights of each kind of fault; 0 leaves a kind out.
	Crash, Partition, Burst, Skew int

	// MaxDown caps the nodes down at once; 0 means a minority ((n-1)/2).
	MaxDown int
	// CrashStop keeps crashed nodes down for good (also after Until):
	// crash-stop failures instead of crash-recovery. Downtime is unused.
	CrashStop bool
	// Downtime is how long a crashed node stays down, drawn in
	// [Downtime[0], Downtime[1]) log-uniformly (as many restarts within
	// 10ms as within a second, when the range spans both). The other spans
	// are drawn the same way.
	Downtime [2]time.Duration
	// PartitionFor is how long a partition lasts.
	PartitionFor [2]time.Duration
	// BurstFor is how long a burst lasts, and BurstFaults what it does.
	BurstFor    [2]time.Duration
	BurstFaults sim.Faults
	// MaxSkew bounds a node's clock offset, drawn in [-MaxSkew, MaxSkew].
	MaxSkew time.Duration
	// Victim, when set, proposes a node to crash (the current leader, say);
	// it is asked for half the crashes. "" or a node that is down or over
	// MaxDown falls back to a random choice.
	Victim func() actors.NodeName
}

// Nemesis schedules n's faults on the run.
func (w *World) Nemesis(n Nemesis) error {
	if err := n.validate(); err != nil {
		return err
	}
	if n.MaxDown == 0 {
		n.MaxDown = (len(w.names) - 1) / 2
	}
	ns := &nemesis{w: w, cfg: n}
	ns.next(n.From)
	w.Sched.At(n.Until, KindAction, "", "nemesis end", ns.end)
	return nil
}

func (n Nemesis) validate() error {
	if n.Every <= 0 || n.Until <= n.From || n.From < 0 {
		return fmt.Errorf("simulation: nemesis needs Every > 0 (got %v) and 0 <= From < Until (got %v, %v)", n.Every, n.From, n.Until)
	}
	if n.Crash < 0 || n.Partition < 0 || n.Burst < 0 || n.Skew < 0 || n.Crash+n.Partition+n.Burst+n.Skew == 0 {
		return fmt.Errorf("simulation: nemesis weights (Crash %d, Partition %d, Burst %d, Skew %d) must not be negative, and one must be positive", n.Crash, n.Partition, n.Burst, n.Skew)
	}
	if n.MaxDown < 0 || n.MaxSkew < 0 {
		return fmt.Errorf("simulation: nemesis MaxDown (%d) and MaxSkew (%v) must not be negative", n.MaxDown, n.MaxSkew)
	}
	return n.BurstFaults.Validate()
}

type nemesis struct {
	w                *World
	cfg              Nemesis
	partition, burst int // generation of the partition/burst in force
	over             bool
}

// span draws a duration in [r[0], r[1]), log-uniformly.
func (ns *nemesis) span(r [2]time.Duration) time.Duration { return ns.w.LogUniform(r[0], r[1]) }

// LogUniform draws a duration in [lo, hi) from the run's Rand so that each
// factor of ten is as likely as the next (lo is taken as at least 1µs).
// It returns lo when hi <= lo.
func (w *World) LogUniform(lo, hi time.Duration) time.Duration {
	lo = max(lo, time.Microsecond)
	if hi <= lo {
		return lo
	}
	f := math.Exp(math.Log(float64(lo)) + w.Rand.Float64()*(math.Log(float64(hi))-math.Log(float64(lo))))
	return min(max(time.Duration(f), lo), hi-1)
}

// next schedules the next fault after an exponential gap from `after`
// (virtual time since the start).
func (ns *nemesis) next(after time.Duration) {
	gap := time.Duration(ns.w.Rand.ExpFloat64() * float64(ns.cfg.Every))
	at := after + gap
	if at >= ns.cfg.Until {
		return
	}
	ns.w.Sched.At(at-ns.w.Sched.Elapsed(), KindAction, "", "nemesis", func() {
		if ns.over {
			return
		}
		ns.fault()
		ns.next(ns.w.Sched.Elapsed())
	})
}

func (ns *nemesis) fault() {
	c := ns.cfg
	pick := ns.w.Rand.IntN(c.Crash + c.Partition + c.Burst + c.Skew)
	switch {
	case pick < c.Crash:
		ns.crash()
	case pick < c.Crash+c.Partition:
		ns.split()
	case pick < c.Crash+c.Partition+c.Burst:
		ns.startBurst()
	default:
		ns.skew()
	}
}

func (ns *nemesis) crash() {
	w := ns.w
	up := w.Up()
	if len(w.names)-len(up) >= ns.cfg.MaxDown || len(up) == 0 {
		return
	}
	var victim actors.NodeName
	if ns.cfg.Victim != nil && w.Rand.IntN(2) == 0 {
		if v := ns.cfg.Victim(); slices.Contains(up, v) {
			victim = v
		}
	}
	if victim == "" {
		victim = up[w.Rand.IntN(len(up))]
	}
	if err := w.Crash(victim); err != nil {
		w.Fail(fmt.Errorf("nemesis: %w", err))
		return
	}
	w.Count("crashes", 1)
	if ns.cfg.CrashStop {
		return
	}
	w.Sched.At(ns.span(ns.cfg.Downtime), KindAction, victim, "nemesis restart", func() {
		if !w.IsUp(victim) {
			if err := w.Restart(victim); err != nil {
				w.Fail(fmt.Errorf("nemesis: %w", err))
			}
		}
	})
}

// split partitions the nodes in two: a random minority (one node or more)
// against the rest.
func (ns *nemesis) split() {
	w := ns.w
	names := w.Names()
	w.Rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	k := 1 + w.Rand.IntN(max(1, len(names)/2))
	side := names[:k]
	slices.Sort(side)
	w.Partition(side)
	w.Count("partitions", 1)
	ns.partition++
	gen := ns.partition
	w.Sched.At(ns.span(ns.cfg.PartitionFor), KindAction, "", "nemesis heal", func() {
		if ns.partition == gen && !ns.over {
			w.Heal()
		}
	})
}

func (ns *nemesis) startBurst() {
	w := ns.w
	if err := w.SetFaults(ns.cfg.BurstFaults); err != nil {
		w.Fail(fmt.Errorf("nemesis: %w", err))
		return
	}
	w.Count("bursts", 1)
	ns.burst++
	gen := ns.burst
	w.Sched.At(ns.span(ns.cfg.BurstFor), KindAction, "", "nemesis calm", func() {
		if ns.burst == gen && !ns.over {
			w.RestoreFaults()
		}
	})
}

func (ns *nemesis) skew() {
	w := ns.w
	if ns.cfg.MaxSkew <= 0 {
		return
	}
	name := w.names[w.Rand.IntN(len(w.names))]
	skew := time.Duration(w.Rand.Int64N(int64(2*ns.cfg.MaxSkew))) - ns.cfg.MaxSkew
	w.SetSkew(name, skew)
	w.Count("skews", 1)
}

// end heals everything and restarts the crashed nodes (unless CrashStop).
func (ns *nemesis) end() {
	w := ns.w
	ns.over = true
	w.Note("nemesis over")
	if w.groups != nil {
		w.Heal()
	}
	w.RestoreFaults()
	for _, name := range w.Names() {
		if !w.IsUp(name) && !ns.cfg.CrashStop {
			if err := w.Restart(name); err != nil {
				w.Fail(fmt.Errorf("nemesis: %w", err))
			}
		}
	}
}

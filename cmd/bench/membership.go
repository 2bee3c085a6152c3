package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/membership"
)

type membershipBench struct {
	nodes   []int
	presets []string
	trials  int
	kills   int
	window  time.Duration
	seed    uint64
	timing  membership.Timing
	// colocated overrides Config.Colocated (0: every node of the trial,
	// as they all run in this process).
	colocated int
	profile   string
	joinVia   string
	out       io.Writer
}

func membershipCmd() *cobra.Command {
	b := &membershipBench{}
	cmd := &cobra.Command{
		Use:   "membership",
		Short: "SWIM on loopback: convergence, failure detection and gossip traffic per preset and cluster size",
		Long: `Starts clusters of SWIM members (memberlist over UDP/TCP on 127.0.0.1) in this
process, for every preset and size asked, several trials each. A trial
measures:
  convergence  time from the joins until every node sees every other;
  bytes/s      gossip bytes sent per node per second once converged;
  detection    after killing a node (no leave), time until every live node
               reports it failed; --kills nodes per trial, one after another;
  false fails  failures reported about nodes that were not killed;
  false susp.  suspicions reported about nodes that were not killed;
  CPU          this process's CPU time per node per second of the trial.
The "local" preset scales with the nodes sharing this machine's CPUs
(Config.Colocated, every node of the trial here) and GOMAXPROCS; each
size's timings are printed before its trials. A trial that does not
converge within a minute, or whose kill is not detected within three,
counts as a meltdown and the next trial starts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b.out = cmd.OutOrStdout()
			return b.run()
		},
	}
	f := cmd.Flags()
	f.IntSliceVar(&b.nodes, "nodes", []int{5, 25, 100, 200}, "cluster sizes")
	f.StringSliceVar(&b.presets, "presets", []string{membership.PresetLocal, membership.PresetLAN}, "timing presets, side by side")
	f.IntVar(&b.trials, "trials", 3, "trials per preset and size")
	f.IntVar(&b.kills, "kills", 2, "nodes killed per trial, one after another")
	f.DurationVar(&b.window, "window", 3*time.Second, "how long gossip traffic is measured once converged")
	f.Uint64Var(&b.seed, "seed", 1, "seed for choosing the nodes to kill")
	f.DurationVar(&b.timing.ProbeInterval, "probe-interval", 0, "override the presets' probe interval")
	f.DurationVar(&b.timing.ProbeTimeout, "probe-timeout", 0, "override the presets' probe timeout")
	f.IntVar(&b.timing.SuspicionMult, "suspicion-mult", 0, "override the presets' suspicion multiplier")
	f.DurationVar(&b.timing.GossipInterval, "gossip-interval", 0, "override the presets' gossip interval")
	f.IntVar(&b.timing.GossipNodes, "gossip-nodes", 0, "override the presets' gossip fan-out")
	f.IntVar(&b.timing.RetransmitMult, "retransmit-mult", 0, "override the presets' retransmit multiplier")
	f.IntVar(&b.timing.SuspicionMaxTimeoutMult, "suspicion-max-mult", 0, "override the presets' suspicion max timeout multiplier")
	f.IntVar(&b.timing.AwarenessMaxMultiplier, "awareness", 0, "override the presets' Lifeguard awareness max multiplier")
	f.IntVar(&b.timing.IndirectChecks, "indirect-checks", 0, "override the presets' indirect probes")
	f.DurationVar(&b.timing.PushPullInterval, "push-pull-interval", 0, "override the presets' push-pull interval")
	f.DurationVar(&b.timing.JoinResync, "join-resync", 0, "override the presets' resync after joining")
	f.StringVar(&b.joinVia, "join-via", "first", `the seed each node joins through: "first" (node-1, as cluster.Local does) or "random" (a random node started before it)`)
	f.StringVar(&b.profile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	f.IntVar(&b.colocated, "colocated", 0, "nodes sharing this machine's CPUs, for the local preset's scaling (0: the cluster size)")
	return cmd
}

type membershipResult struct {
	preset        string
	n             int
	convergence   []time.Duration
	detection     []time.Duration
	bytesPerSec   []float64
	cpuPerNode    []float64 // CPU seconds per node per second
	falseFailures int
	falseSuspects int
	meltdowns     int
}

func (b *membershipBench) validate() error {
	if len(b.nodes) == 0 {
		return fmt.Errorf("--nodes is empty; give cluster sizes such as 5,25,100")
	}
	for _, n := range b.nodes {
		if n < 2 || n > 1000 {
			return fmt.Errorf("--nodes %d: a cluster size must be from 2 to 1000", n)
		}
		if b.kills >= n {
			return fmt.Errorf("--kills %d with --nodes %d: at least one node must survive", b.kills, n)
		}
	}
	for _, p := range b.presets {
		if !slices.Contains(membership.Presets, p) {
			return fmt.Errorf("--presets: %q is unknown; valid presets are %v", p, membership.Presets)
		}
	}
	if b.trials < 1 || b.kills < 0 || b.window <= 0 || b.colocated < 0 {
		return fmt.Errorf("--trials must be at least 1, --kills and --colocated at least 0 and --window positive")
	}
	if b.joinVia != "first" && b.joinVia != "random" {
		return fmt.Errorf("--join-via %q: use first or random", b.joinVia)
	}
	if err := (&membership.Config{Name: "bench", Timing: b.timing}).Validate(); err != nil {
		return fmt.Errorf("the timing flags: %w", err)
	}
	return nil
}

func (b *membershipBench) run() error {
	if err := b.validate(); err != nil {
		return err
	}
	stopProfile, err := cpuProfile(b.profile)
	if err != nil {
		return err
	}
	defer stopProfile()
	rng := rand.New(rand.NewPCG(b.seed, b.seed))
	var results []*membershipResult
	for _, n := range b.nodes {
		for _, preset := range b.presets {
			r := &membershipResult{preset: preset, n: n}
			if preset == membership.PresetLocal {
				cpus := membership.MachineCPUs()
				t := membership.LocalTiming(b.colocatedFor(n), cpus)
				fmt.Fprintf(b.out, "# local preset for %d nodes on %.2f free CPUs (GOMAXPROCS %d, load %s): %s\n", b.colocatedFor(n), cpus, runtime.GOMAXPROCS(0), loadAverage(), t)
			}
			for trial := range b.trials {
				converged, detected := len(r.convergence), len(r.detection)
				if err := b.trial(r, rng); err != nil {
					return fmt.Errorf("%s preset, %d nodes, trial %d: %w", preset, n, trial+1, err)
				}
				conv := "none (meltdown)"
				if len(r.convergence) > converged {
					conv = secs(r.convergence[len(r.convergence)-1]) + " s"
				}
				fmt.Fprintf(b.out, "# %s, %d nodes, trial %d/%d: convergence %s, detections %s s, false suspicions so far %d, false failures so far %d, load %s\n",
					preset, n, trial+1, b.trials, conv, durations(r.detection[detected:]), r.falseSuspects, r.falseFailures, loadAverage())
			}
			results = append(results, r)
		}
	}
	b.report(results)
	return nil
}

// watcher records, per observing node, when it reported each member
// failed, and the members it suspected.
type watcher struct {
	mu        sync.Mutex
	failed    map[actors.NodeName]map[actors.NodeName][]time.Time // observer → member → when, in order
	suspected map[actors.NodeName]int                             // member → suspicions reported, by every observer
}

func (w *watcher) onEvent(observer actors.NodeName) func(membership.Event) {
	return func(ev membership.Event) {
		switch ev.(type) {
		case *membership.MemberFailed:
			now := time.Now()
			w.mu.Lock()
			defer w.mu.Unlock()
			w.failed[observer][ev.Of().Name] = append(w.failed[observer][ev.Of().Name], now)
		case *membership.MemberSuspect:
			w.mu.Lock()
			defer w.mu.Unlock()
			w.suspected[ev.Of().Name]++
		}
	}
}

func (b *membershipBench) colocatedFor(n int) int { return cmp.Or(b.colocated, n) }

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage is the machine's 1-minute load average ("?" where unknown).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func (b *membershipBench) trial(r *membershipResult, rng *rand.Rand) error {
	w := &watcher{failed: map[actors.NodeName]map[actors.NodeName][]time.Time{}, suspected: map[actors.NodeName]int{}}
	cpu0, wall0 := processCPU(), time.Now()
	defer func() {
		r.cpuPerNode = append(r.cpuPerNode, (processCPU()-cpu0).Seconds()/time.Since(wall0).Seconds()/float64(r.n))
	}()
	nodes := make([]*membership.Membership, 0, r.n)
	defer func() {
		var wg sync.WaitGroup
		for _, m := range nodes {
			wg.Go(func() { _ = m.Shutdown() })
		}
		wg.Wait()
	}()
	for i := range r.n {
		name := actors.NodeName(fmt.Sprintf("node-%d", i+1))
		cfg := membership.Config{Name: name, Preset: r.preset, Timing: b.timing, Colocated: b.colocatedFor(r.n), Logger: zerolog.Nop()}
		if i > 0 {
			cfg.Seeds = []string{nodes[0].GossipAddr()}
			if b.joinVia == "random" {
				cfg.Seeds = []string{nodes[rng.IntN(i)].GossipAddr()}
			}
		}
		m, err := membership.New(cfg)
		if err != nil {
			return err
		}
		nodes = append(nodes, m)
		w.mu.Lock()
		w.failed[name] = map[actors.NodeName][]time.Time{}
		w.mu.Unlock()
		m.Subscribe(w.onEvent(name))
	}

	// Convergence: every node joins at once through node-1.
	start := time.Now()
	errs := make(chan error, r.n)
	for _, m := range nodes[1:] {
		go func() { errs <- m.Join(context.Background()) }()
	}
	var joinErr error
	for range nodes[1:] {
		if err := <-errs; err != nil && joinErr == nil {
			joinErr = err
		}
	}
	if joinErr != nil {
		fmt.Fprintf(b.out, "# a join failed: %v\n", joinErr)
		r.meltdowns++
		b.countFalse(r, w, nil)
		return nil
	}
	if err := waitUntil(time.Minute, func() bool {
		for _, m := range nodes {
			if len(m.View().Live()) != r.n {
				return false
			}
		}
		return true
	}); err != nil {
		r.meltdowns++
		b.countFalse(r, w, nil)
		return nil
	}
	r.convergence = append(r.convergence, time.Since(start))

	// Gossip traffic once converged.
	sent := func() int64 {
		var total int64
		for _, m := range nodes {
			total += m.Stats().BytesSent
		}
		return total
	}
	before, t0 := sent(), time.Now()
	time.Sleep(b.window) // a measurement window, not synchronisation
	r.bytesPerSec = append(r.bytesPerSec, float64(sent()-before)/time.Since(t0).Seconds()/float64(r.n))

	// Detection: kill nodes one after another.
	live := slices.Clone(nodes)
	killed := map[actors.NodeName]bool{}
	for range b.kills {
		i := rng.IntN(len(live))
		victim := live[i]
		live = slices.Delete(live, i, i+1)
		killed[victim.Name()] = true
		at := time.Now()
		_ = victim.Shutdown()
		var last time.Time
		if err := waitUntil(3*time.Minute, func() bool {
			w.mu.Lock()
			defer w.mu.Unlock()
			last = time.Time{}
			for _, m := range live {
				times := w.failed[m.Name()][victim.Name()]
				i := slices.IndexFunc(times, func(t time.Time) bool { return !t.Before(at) })
				if i < 0 {
					return false // not yet reported failed since the kill
				}
				if times[i].After(last) {
					last = times[i]
				}
			}
			return true
		}); err != nil {
			fmt.Fprintf(b.out, "# %s was not reported failed by every live node: %v\n", victim.Name(), err)
			r.meltdowns++
			break
		}
		r.detection = append(r.detection, last.Sub(at))
	}
	b.countFalse(r, w, killed)
	return nil
}

// countFalse adds the failures and suspicions reported about nodes that
// were not killed.
func (b *membershipBench) countFalse(r *membershipResult, w *watcher, killed map[actors.NodeName]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, seen := range w.failed {
		for member, times := range seen {
			if !killed[member] {
				r.falseFailures += len(times)
			}
		}
	}
	for member, n := range w.suspected {
		if !killed[member] {
			r.falseSuspects += n
		}
	}
}

// waitUntil polls cond every 5ms until it holds or timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// quantile is the nearest-rank q-quantile of ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

func mean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(max(len(xs), 1))
}

func durations(ds []time.Duration) string {
	var out []string
	for _, d := range ds {
		out = append(out, secs(d))
	}
	return strings.Join(out, ",")
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

func (b *membershipBench) report(results []*membershipResult) {
	tw := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "preset\tnodes\ttrials\tmeltdowns\tconvergence p50 s\tconvergence max s\tdetection p50 s\tdetection p99 s\tdetections\tgossip B/s/node\tCPU ms/s/node\tfalse suspicions\tfalse failures\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%.0f\t%.2f\t%d\t%d\t\n", r.preset, r.n, b.trials, r.meltdowns,
			secs(quantile(r.convergence, 0.5)), secs(quantile(r.convergence, 1)),
			secs(quantile(r.detection, 0.5)), secs(quantile(r.detection, 0.99)), len(r.detection),
			mean(r.bytesPerSec), 1000*mean(r.cpuPerNode), r.falseSuspects, r.falseFailures)
	}
	_ = tw.Flush()

	var figs []string
	largest := slices.Max(b.nodes)
	for _, r := range results {
		if r.preset == membership.PresetLocal && r.n == largest {
			figs = append(figs, "nodes="+fmt.Sprint(r.n),
				"detection_p50_s="+secs(quantile(r.detection, 0.5)),
				"detection_p99_s="+secs(quantile(r.detection, 0.99)),
				"convergence_s="+secs(quantile(r.convergence, 1)),
				fmt.Sprintf("false_failures=%d", r.falseFailures),
				fmt.Sprintf("meltdowns=%d", r.meltdowns),
				fmt.Sprintf("gossip_bytes_per_s_per_node=%.0f", mean(r.bytesPerSec)))
		}
	}
	for _, r := range results {
		p := fmt.Sprintf("%s_n%d_", r.preset, r.n)
		figs = append(figs,
			p+"convergence_s="+secs(quantile(r.convergence, 1)),
			p+"detection_p50_s="+secs(quantile(r.detection, 0.5)),
			p+"detection_p99_s="+secs(quantile(r.detection, 0.99)),
			fmt.Sprintf("%sgossip_bytes_per_s_per_node=%.0f", p, mean(r.bytesPerSec)),
			fmt.Sprintf("%sfalse_failures=%d", p, r.falseFailures),
			fmt.Sprintf("%smeltdowns=%d", p, r.meltdowns))
	}
	fmt.Fprintln(b.out, strings.Join(figs, " "))
}

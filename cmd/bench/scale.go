package main

import (
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/simulation"
	"github.com/troupe-dev/troupe/telemetry"
	"github.com/troupe-dev/troupe/transport/sim"
)

type scaleBench struct {
	nodes  []int
	spread time.Duration // the cold start: nodes start within it
	boot   time.Duration // virtual time from the cold start to the idle window
	idle   time.Duration // the idle window measured
	seed   uint64
	prof   string // CPU profile file
	out    io.Writer
}

func scaleCmd() *cobra.Command {
	b := &scaleBench{}
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "Idle cost per node and boot election messages, per cluster size, on the simulated network in virtual time",
		Long: `Runs a cluster of N nodes with a default node run's protocols (Bully,
jobs, telemetry; membership is the simulation's failure detector, which
sends nothing: SWIM's own cost is 'bench membership') on the deterministic
simulation: virtual time, one goroutine, the simulated network. For each N:

  cold start  every node starts within --spread (uniformly, from the seed)
              and learns of the others through the detector (0.5-0.75 s
              lag); --spread 0: every node starts at once knowing every
              other (cheaper to simulate: no failure alerts about the nodes
              not yet started); counts the election messages (acks of
              reliable delivery included) until every node follows the
              highest node;
  idle        over --idle of virtual time once --boot has passed: network
              messages and bytes per node per second by protocol, timer
              firings per node per second, handler time per protocol
              (the median of the sampled handler latencies times the messages
              handled: an estimate), and the
              process's CPU per node per simulated second (the simulator's
              own work included).

The last line is the contract:
idle_msgs_per_node_n25=<x> idle_msgs_per_node_n1000=<y> idle_bytes_per_node_n1000=<z> boot_election_msgs_n100=<w>
(0 for a size that was not run).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b.out = cmd.OutOrStdout()
			return b.run()
		},
	}
	f := cmd.Flags()
	f.IntSliceVar(&b.nodes, "nodes", []int{5, 25, 100, 300, 1000}, "cluster sizes")
	f.DurationVar(&b.spread, "spread", time.Second, "the cold start: every node starts within this")
	f.DurationVar(&b.boot, "boot", 8*time.Second, "virtual time from the cold start to the idle window")
	f.DurationVar(&b.idle, "idle", 20*time.Second, "virtual time of the idle window measured")
	f.Uint64Var(&b.seed, "seed", 1, "seed of the simulation")
	f.StringVar(&b.prof, "cpuprofile", "", "write a CPU profile of the runs to this file")
	return cmd
}

func (b *scaleBench) validate() error {
	if len(b.nodes) == 0 {
		return fmt.Errorf("--nodes is empty; give cluster sizes such as 5,25,100,300,1000")
	}
	for _, n := range b.nodes {
		if n < 2 || n > 5000 {
			return fmt.Errorf("--nodes %d: a cluster size must be from 2 to 5000", n)
		}
	}
	switch {
	case b.spread < 0 || b.spread > time.Minute:
		return fmt.Errorf("--spread %v: use 0 to 1m", b.spread)
	case b.boot < b.spread+2*time.Second || b.boot > 10*time.Minute:
		return fmt.Errorf("--boot %v: use --spread plus 2s (%v) to 10m", b.boot, b.spread+2*time.Second)
	case b.idle < time.Second || b.idle > 10*time.Minute:
		return fmt.Errorf("--idle %v: use 1s to 10m", b.idle)
	case b.seed == 0:
		return fmt.Errorf("--seed 0: use a seed from 1")
	}
	return nil
}

// protoFigures are one protocol's idle figures, per node and second.
type protoFigures struct {
	msgs, bytes, timers float64
	handlerMS           float64 // handler time, ms per node per second
}

type scaleResult struct {
	n          int
	settledAt  time.Duration // when every node followed the highest (0: never)
	leader     actors.NodeName
	bootMsgs   map[string]int64 // election messages by type until settled
	bootTotal  int64
	leaderOK   bool // at the end every node still follows the highest
	msgs       float64
	bytes      float64
	cpuMS      float64 // process CPU, ms per node per simulated second
	protocols  map[string]protoFigures
	wall       time.Duration
	virtual    time.Duration
	simErr     error
	lateElects int64 // election messages after settling, through the idle window
}

func (b *scaleBench) run() error {
	if err := b.validate(); err != nil {
		return err
	}
	stopProfile, err := cpuProfile(b.prof)
	if err != nil {
		return err
	}
	defer stopProfile()
	var results []*scaleResult
	for _, n := range b.nodes {
		r, err := b.one(n)
		if err != nil {
			return fmt.Errorf("%d nodes: %w", n, err)
		}
		fmt.Fprintf(b.out, "# %d nodes: leader %s settled %.2f s after the cold start with %d election messages %v; idle %.2f msgs/s, %.0f B/s, %.3f CPU ms/s per node; %.1f s of wall time for %.0f s virtual\n",
			n, r.leader, r.settledAt.Seconds(), r.bootTotal, r.bootMsgs, r.msgs, r.bytes, r.cpuMS, r.wall.Seconds(), r.virtual.Seconds())
		results = append(results, r)
	}
	b.report(results)
	return nil
}

// one runs a cluster of n nodes: the cold start, then the idle window.
func (b *scaleBench) one(n int) (*scaleResult, error) {
	r := &scaleResult{n: n, bootMsgs: map[string]int64{}, protocols: map[string]protoFigures{}}
	highest := actors.NodeName(fmt.Sprintf("node-%d", n))
	sc := simulation.Scenario{
		Name:     "scale",
		Nodes:    n,
		Duration: b.boot + b.idle,
		Network:  sim.Faults{Latency: time.Millisecond, Jitter: time.Millisecond},
		Setup: func(w *simulation.World) error {
			return b.setup(w, r, highest)
		},
	}
	start := time.Now()
	res := simulation.Run(sc, b.seed, simulation.Options{})
	r.wall, r.virtual = time.Since(start), res.Virtual
	if res.Err != nil {
		return nil, res.Err
	}
	if r.settledAt == 0 {
		return nil, fmt.Errorf("the nodes never all followed %s within %v", highest, b.boot)
	}
	if !r.leaderOK {
		return nil, fmt.Errorf("not every node followed %s at the end of the idle window", highest)
	}
	r.leader = highest
	return r, nil
}

func (b *scaleBench) setup(w *simulation.World, r *scaleResult, highest actors.NodeName) error {
	names := w.Names()
	following := map[actors.NodeName]actors.NodeName{}
	settledCount := 0
	electionStats := func() map[string]int64 {
		out := map[string]int64{}
		for _, row := range w.Hub.Stats() {
			if row.Protocol == string(election.Name) {
				out[strings.TrimPrefix(row.Type, "troupe.election.v1.")] += row.Sent
			}
		}
		return out
	}
	if err := simulation.Observe(w, func(node actors.NodeName, ev *election.LeaderChanged) {
		prev := following[node]
		following[node] = ev.Leader
		switch {
		case prev != highest && ev.Leader == highest:
			settledCount++
		case prev == highest && ev.Leader != highest:
			settledCount--
		}
		if settledCount == len(names) && r.settledAt == 0 {
			r.settledAt = w.Sched.Elapsed()
			r.bootMsgs = electionStats()
			for _, v := range r.bootMsgs {
				r.bootTotal += v
			}
		}
	}); err != nil {
		return err
	}
	// The cold start: with a spread, every node but node-1 is down at
	// first (crashed before any protocol started: the detector reports it
	// failed, so telemetry raises an alert about each), and starts at a
	// moment drawn within the spread; without one, every node starts at
	// once, knowing every other (the detector's view of a node that
	// starts).
	if b.spread > 0 {
		for _, name := range names[1:] {
			if err := w.Crash(name); err != nil {
				return err
			}
		}
	}
	ef, err := election.New(election.DefaultConfig())
	if err != nil {
		return err
	}
	jc := jobs.DefaultConfig()
	jc.Inline = true
	jf, err := jobs.New(jc)
	if err != nil {
		return err
	}
	tf, err := telemetry.New(telemetry.DefaultConfig())
	if err != nil {
		return err
	}
	for _, f := range []actors.Factory{ef, jf, tf} {
		if err := w.Start(f); err != nil {
			return err
		}
	}
	rng := rand.New(rand.NewPCG(b.seed, uint64(len(names))))
	for _, name := range names[1:] {
		if b.spread == 0 {
			break
		}
		at := time.Duration(rng.Int64N(int64(b.spread) + 1))
		w.Sched.At(at, simulation.KindAction, name, "start "+string(name), func() {
			if err := w.Restart(name); err != nil {
				w.Fail(err)
			}
		})
	}

	// The idle window.
	var before idleSample
	w.Sched.At(b.boot, simulation.KindAction, "", "idle window starts", func() { before = sampleIdle(w) })
	w.Sched.At(b.boot+b.idle, simulation.KindAction, "", "idle window ends", func() {
		after := sampleIdle(w)
		perNodeSec := float64(len(names)) * b.idle.Seconds()
		for proto, c := range after.net {
			d := c.sub(before.net[proto])
			f := r.protocols[proto]
			f.msgs, f.bytes = float64(d.msgs)/perNodeSec, float64(d.bytes)/perNodeSec
			r.protocols[proto] = f
			r.msgs += f.msgs
			r.bytes += f.bytes
		}
		for proto, h := range after.handlers {
			f := r.protocols[proto]
			f.timers = float64(h.timers-before.handlers[proto].timers) / perNodeSec
			f.handlerMS = float64(h.ns-before.handlers[proto].ns) / 1e6 / perNodeSec
			r.protocols[proto] = f
		}
		r.cpuMS = float64(after.cpu-before.cpu) / float64(time.Millisecond) / perNodeSec
		var total int64
		for _, v := range electionStats() {
			total += v
		}
		r.lateElects = total - r.bootTotal
		r.leaderOK = settledCount == len(names)
	})
	return nil
}

type netCount struct{ msgs, bytes int64 }

func (c netCount) sub(o netCount) netCount { return netCount{c.msgs - o.msgs, c.bytes - o.bytes} }

type handlerCount struct {
	timers int64
	ns     float64 // estimated handler time: median sampled latency × messages handled, per type
}

type idleSample struct {
	net      map[string]netCount
	handlers map[string]handlerCount
	cpu      time.Duration
}

// sampleIdle reads the hub's counters by protocol, every node's handler
// counters, and the process's CPU time.
func sampleIdle(w *simulation.World) idleSample {
	s := idleSample{net: map[string]netCount{}, handlers: map[string]handlerCount{}}
	for _, row := range w.Hub.Stats() {
		c := s.net[row.Protocol]
		c.msgs += row.Sent
		c.bytes += row.SentBytes
		s.net[row.Protocol] = c
	}
	for _, name := range w.Up() {
		node := w.Node(name)
		if node == nil {
			continue
		}
		for proto, ps := range node.Stats().Protocols {
			if strings.HasPrefix(string(proto), "sim-") {
				continue // the simulation's own probes
			}
			h := s.handlers[string(proto)]
			h.timers += ps.Timers
			for _, ts := range ps.Types {
				// The median, not the mean: a run preempted on a loaded
				// machine would weigh on the mean.
				h.ns += float64(ts.Latency.Quantile(0.5)) * float64(ts.MsgsIn)
			}
			s.handlers[string(proto)] = h
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		s.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return s
}

func (b *scaleBench) report(results []*scaleResult) {
	tw := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tidle msgs/s/node\tbytes/s/node\tCPU ms/s/node\tboot election msgs\tsettled s\telection msgs after\twall s\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%d\t%.2f\t%.0f\t%.3f\t%d\t%.2f\t%d\t%.1f\t\n", r.n, r.msgs, r.bytes, r.cpuMS, r.bootTotal, r.settledAt.Seconds(), r.lateElects, r.wall.Seconds())
	}
	_ = tw.Flush()
	fmt.Fprintln(b.out)
	tw = tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tprotocol\tmsgs/s/node\tbytes/s/node\ttimers/s/node\thandler ms/s/node\t")
	for _, r := range results {
		for _, proto := range slices.Sorted(maps.Keys(r.protocols)) {
			f := r.protocols[proto]
			fmt.Fprintf(tw, "%d\t%s\t%.2f\t%.0f\t%.2f\t%.4f\t\n", r.n, proto, f.msgs, f.bytes, f.timers, f.handlerMS)
		}
	}
	_ = tw.Flush()
	byN := map[int]*scaleResult{}
	for _, r := range results {
		byN[r.n] = r
	}
	pick := func(n int, f func(*scaleResult) float64) float64 {
		if r := byN[n]; r != nil {
			return f(r)
		}
		return 0
	}
	fmt.Fprintf(b.out, "idle_msgs_per_node_n25=%.2f idle_msgs_per_node_n1000=%.2f idle_bytes_per_node_n1000=%.0f boot_election_msgs_n100=%d\n",
		pick(25, func(r *scaleResult) float64 { return r.msgs }),
		pick(1000, func(r *scaleResult) float64 { return r.msgs }),
		pick(1000, func(r *scaleResult) float64 { return r.bytes }),
		int64(pick(100, func(r *scaleResult) float64 { return float64(r.bootTotal) })))
}

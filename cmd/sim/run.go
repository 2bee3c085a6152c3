package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/simulation"
)

type options struct {
	scenario          string
	seeds             int
	first, seed       uint64
	seedSet, seedsSet bool
	trace, keepGoing  bool
	parallel, nodes   int
	duration          time.Duration
	profile, dataDir  string
	gcPercent         int
	out               io.Writer
}

// errFailed is returned when a seed failed: exit status 1, nothing more to
// print.
var errFailed = errors.New("some seeds failed")

func listCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the scenarios",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, name := range simulation.Names() {
				fmt.Fprintf(cmd.OutOrStdout(), "%-10s %s\n", name, simulation.Describe(name))
			}
			return nil
		},
	}
}

func (o *options) run() error {
	sc, err := simulation.Lookup(o.scenario, simulation.Params{Nodes: o.nodes, Duration: o.duration, Profile: o.profile})
	if err != nil {
		return err
	}
	switch {
	case o.seedSet && o.seedsSet:
		return errors.New("--seed runs one seed and --seeds a sweep; give one of them")
	case o.trace && !o.seedSet:
		return errors.New("--trace prints one run: give --seed S too")
	case o.seedSet && o.seed == 0:
		return errors.New("--seed 0: seeds start at 1")
	case !o.seedSet && (o.seeds < 1 || o.first == 0):
		return fmt.Errorf("--seeds %d --first %d: give at least one seed, from 1", o.seeds, o.first)
	case o.parallel < 0:
		return fmt.Errorf("--parallel %d: use 1 or more (0: GOMAXPROCS)", o.parallel)
	case o.gcPercent < 0:
		return fmt.Errorf("--gc-percent %d: use 1 or more (100 is Go's default)", o.gcPercent)
	}
	if o.gcPercent > 0 {
		debug.SetGCPercent(o.gcPercent)
	}
	if o.seedSet {
		return o.one(sc)
	}
	return o.sweep(sc)
}

func (o *options) opts(seed uint64) simulation.Options {
	opts := simulation.Options{KeepGoing: o.keepGoing}
	if o.dataDir != "" {
		opts.DataDir = filepath.Join(o.dataDir, fmt.Sprintf("%s-seed-%d", o.scenario, seed))
	}
	return opts
}

// one runs a single seed, printing its trace if asked.
func (o *options) one(sc simulation.Scenario) error {
	opts := o.opts(o.seed)
	var w *bufio.Writer
	if o.trace {
		w = bufio.NewWriterSize(o.out, 1<<16)
		opts.Trace = w
	}
	r := simulation.Run(sc, o.seed, opts)
	if w != nil {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	verdict := "ok"
	if r.Err != nil {
		verdict = "FAIL"
		fmt.Fprintf(o.out, "FAIL %s seed=%d: %v\n", o.scenario, r.Seed, r.Err)
	}
	fmt.Fprintf(o.out, "scenario=%s seed=%d result=%s hash=%s events=%d lines=%d virtual_s=%.1f wall_s=%.3f speedup_vs_realtime=%.1f %s\n",
		o.scenario, r.Seed, verdict, r.Hash, r.Events, r.Lines, r.Virtual.Seconds(), r.Wall.Seconds(), r.Speedup(), r.CountsString())
	if r.Err != nil {
		return errFailed
	}
	return nil
}

// sweep runs seeds in parallel and prints the failures as they come.
func (o *options) sweep(sc simulation.Scenario) error {
	parallel := o.parallel
	if parallel == 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	parallel = min(parallel, o.seeds)
	start := time.Now()
	seeds := make(chan uint64)
	var mu sync.Mutex
	var virtual time.Duration
	var events uint64
	var speedups []float64
	var failed []uint64
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range seeds {
				r := simulation.Run(sc, seed, o.opts(seed))
				mu.Lock()
				virtual += r.Virtual
				events += r.Events
				speedups = append(speedups, r.Speedup())
				if r.Err != nil {
					failed = append(failed, seed)
					fmt.Fprintf(o.out, "FAIL %s seed=%d hash=%s: %v\n  replay: go run ./cmd/sim %s --seed %d --trace%s\n",
						o.scenario, seed, r.Hash, r.Err, o.scenario, seed, o.replayFlags())
				}
				mu.Unlock()
			}
		}()
	}
	for i := range o.seeds {
		seeds <- o.first + uint64(i)
	}
	close(seeds)
	wg.Wait()
	wall := time.Since(start)
	slices.Sort(speedups)
	slices.Sort(failed)
	median := speedups[len(speedups)/2]
	if len(failed) > 0 {
		fmt.Fprintf(o.out, "failing seeds: %v\n", failed)
	}
	fmt.Fprintf(o.out, "scenario=%s seeds=%d first=%d failures=%d virtual_s=%.1f wall_s=%.2f speedup_vs_realtime=%.1f run_speedup_median=%.1f events=%d parallel=%d\n",
		o.scenario, o.seeds, o.first, len(failed), virtual.Seconds(), wall.Seconds(), virtual.Seconds()/wall.Seconds(), median, events, parallel)
	if len(failed) > 0 {
		return errFailed
	}
	return nil
}

// replayFlags are the sweep's flags that change a run, for the replay hint.
func (o *options) replayFlags() string {
	s := ""
	if o.nodes != 0 {
		s += fmt.Sprintf(" --nodes %d", o.nodes)
	}
	if o.duration != 0 {
		s += " --duration " + o.duration.String()
	}
	if o.profile != "" {
		s += " --profile " + o.profile
	}
	if o.keepGoing {
		s += " --keep-going"
	}
	return s
}

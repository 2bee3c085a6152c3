package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		if err != errFailed {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:   "sim SCENARIO",
		Short: "Run deterministic simulations of Troupe clusters: one seed replays one run",
		Long: `Runs a scenario (see 'sim list') on virtual time: every node's protocols,
timers and the simulated network run under one scheduler whose choices come
from the seed, with a nemesis (crashes and restarts, partitions, bursts of
loss, duplication and reordering, clock skew) and checkers.

--seeds N runs seeds --first .. --first+N-1, --parallel at a time, and
prints each failing seed with the command that replays it. --seed S runs
one seed; with --trace it prints the run's trace, one line per event.`,
		Args:          cobra.ExactArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.out = cmd.OutOrStdout()
			o.scenario = args[0]
			o.seedSet = cmd.Flags().Changed("seed")
			o.seedsSet = cmd.Flags().Changed("seeds")
			return o.run()
		},
	}
	f := root.Flags()
	f.IntVar(&o.seeds, "seeds", 100, "number of seeds to sweep")
	f.Uint64Var(&o.first, "first", 1, "first seed of the sweep")
	f.Uint64Var(&o.seed, "seed", 0, "run this one seed (replay)")
	f.BoolVar(&o.trace, "trace", false, "with --seed: print the trace")
	f.IntVar(&o.parallel, "parallel", 0, "runs at once (default GOMAXPROCS)")
	f.IntVar(&o.nodes, "nodes", 0, "cluster size (default: the scenario's)")
	f.DurationVar(&o.duration, "duration", 0, "virtual time of each run (default: the scenario's)")
	f.StringVar(&o.profile, "profile", "", "fault profile, for scenarios that have several (raft-kv: mixed, crash-storm, partitions; default: drawn per seed)")
	f.BoolVar(&o.keepGoing, "keep-going", false, "run to the end after a checker fails (default: stop at the first failure)")
	f.IntVar(&o.gcPercent, "gc-percent", 400, "Go GC target (GOGC) while simulating; a higher one trades memory for speed")
	f.StringVar(&o.dataDir, "data-dir", "", "root of the nodes' data dirs (default: a temporary directory per run, removed afterwards)")
	root.AddCommand(listCmd())
	return root
}

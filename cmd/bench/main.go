package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "bench",
		Short:         "Measure Troupe's building blocks",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(membershipCmd())
	root.AddCommand(failoverCmd())
	root.AddCommand(kvCmd())
	root.AddCommand(jobsBenchCmd())
	root.AddCommand(speedupCmd())
	root.AddCommand(scaleCmd())
	root.AddCommand(channelsCmd())
	return root
}

// cpuProfile starts a CPU profile written to path ("" profiles nothing)
// and returns the function that ends it.
func cpuProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

package main

import (
	"fmt"
	"os"

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
	return root
}

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
		Use:           "node",
		Short:         "Run Troupe nodes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(demoCmd(), runCmd(), jobCmd(), membersCmd(), leaderCmd())
	root.AddCommand(kvCmd(), raftCmd(), lockCmd(), configCmd(), certsCmd(), versionCmd())
	root.AddCommand(clusterStatusCmd())
	finish(root)
	return root
}

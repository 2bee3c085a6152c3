// Command node runs Troupe nodes and talks to them. `node run` runs one
// node (membership, Bully election, jobs, the HTTP API); `node job`,
// `node members` and `node leader` use a node's API; `node demo` starts a
// 5-node cluster in this process and runs the sample job on it.
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
	root.AddCommand(kvCmd())
	return root
}

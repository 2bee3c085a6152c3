// Command node runs Troupe nodes. `node demo` starts a 5-node cluster in
// this process on loopback gRPC and runs the broadcast example on it.
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
	root.AddCommand(demoCmd())
	root.AddCommand(kvCmd())
	return root
}

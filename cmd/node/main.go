// Command node runs Troupe nodes and talks to them. `node run` runs one
// node (membership, Bully election, jobs, telemetry, the HTTP API with the
// dashboard) from a configuration file, environment variables and flags;
// `node job`, `node members`, `node leader`, `node status`, `node raft` and
// `node config` use a node's API, `node kv` its replicated key-value store
// and `node lock` its lease locks; `node certs` makes development
// certificates for mutual TLS; `node demo` starts a 5-node cluster in this
// process and runs the sample job on it.
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
	return root
}

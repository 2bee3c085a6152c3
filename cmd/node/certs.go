package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/security"
)

func certsCmd() *cobra.Command {
	var out string
	var nodes, hosts []string
	var days int
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Make a development CA and a certificate and key per node, for mutual TLS",
		Long: `certs writes a development CA (ca.crt, ca.key) to --out, or reuses the one
there, and a certificate and key per node of --nodes (<node>.crt,
<node>.key), each valid for server and client authentication.

A certificate is its node's identity: its subject's common name (CN) is the
node's name, and a node accepts on its gRPC port only what a peer sends as
the node its certificate names. Give each node its own certificate, named
exactly as node.name in its configuration (a node refuses to start with a
certificate for another name), and never share one between nodes. The
certificates also carry the DNS names and addresses localhost, 127.0.0.1,
::1 and --hosts, for clients of the HTTPS API; these name no node. Point a
node's tls.ca, tls.cert and tls.key at its files. Keep ca.key off the
nodes: it mints members.

For production, use your own CA; its node certificates need the node's
name as their common name and both server and client authentication
(extended key usage).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days < 1 {
				return fmt.Errorf("--days %d: give 1 or more", days)
			}
			files, err := security.WriteDevCerts(out, nodes, hosts, time.Duration(days)*24*time.Hour)
			for _, f := range files {
				fmt.Fprintln(cmd.OutOrStdout(), f)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&out, "out", "certs", "directory for the CA and the nodes' certificates")
	cmd.Flags().StringSliceVar(&nodes, "nodes", nil, "node names, one certificate each (required)")
	cmd.Flags().StringSliceVar(&hosts, "hosts", nil, "extra DNS names or IP addresses in every certificate (e.g. for the HTTPS API)")
	cmd.Flags().IntVar(&days, "days", 365, "validity in days")
	_ = cmd.MarkFlagRequired("nodes")
	return cmd
}

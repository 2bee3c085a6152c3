package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/config"
)

func configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check a node's configuration file, or apply one to a running node",
		Long: `A node's configuration is a YAML file with the sections node, membership,
election, jobs, raft, telemetry, api and tls (docs/operations.md lists every key).

  node config check FILE                  validate FILE; --print shows the result
  node config apply --node URL FILE       apply FILE to a running node, without a restart
  node config show --node URL             print a node's running configuration (secrets hidden)

A running node applies a new file whole or not at all: a file that is
invalid, or that changes a key that needs a restart, is refused and the
running configuration kept.`,
	}
	cmd.AddCommand(configCheckCmd(), configApplyCmd(), configShowCmd())
	return cmd
}

func configCheckCmd() *cobra.Command {
	var print, env bool
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a configuration file; every problem names its key and line",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src := config.Sources{File: args[0]}
			if env {
				src.Env = os.Environ()
			}
			cfg, err := config.Load(src)
			if err != nil {
				return fmt.Errorf("%s is not valid:\n%w", args[0], err)
			}
			if print {
				out, err := cfg.YAML(true)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(out)
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&print, "print", false, "print the whole configuration (defaults filled in, secrets hidden)")
	cmd.Flags().BoolVar(&env, "env", false, "apply the TROUPE_* environment variables over the file, as node run does")
	return cmd
}

func configApplyCmd() *cobra.Command {
	o := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Apply a configuration file to a running node (PUT /v1/config)",
		Long: `apply sends FILE to a node, which validates it with the environment and
flags it was started with over it, and hands each changed section to its
protocol as a reconfiguration event. It prints the keys that changed. A
file that is invalid or changes a key that needs a restart is refused and
nothing changes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var out applied
			if _, err := c.Send(cmd.Context(), http.MethodPut, "/v1/config", "application/yaml", bytes.NewReader(data), &out); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if len(out.Changed) == 0 {
				fmt.Fprintln(w, "no change")
			}
			for _, ch := range out.Changed {
				fmt.Fprintf(w, "%s: %s → %s\n", ch.Key, ch.Old, ch.New)
			}
			return nil
		},
	}
	o.flags(cmd.Flags())
	return cmd
}

func configShowCmd() *cobra.Command {
	o := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print a node's running configuration (GET /v1/config; secrets hidden)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var out map[string]any
			if _, err := c.Do(cmd.Context(), http.MethodGet, "/v1/config", nil, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	o.flags(cmd.Flags())
	return cmd
}

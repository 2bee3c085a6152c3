package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/consensus"
)

func raftCmd() *cobra.Command {
	o := &kvOptions{}
	cmd := &cobra.Command{
		Use:   "raft",
		Short: "Inspect and change a node's raft group over HTTP",
		Long: `raft talks to the operator API of a node's raft group (package consensus).
Changes go to the leader's node; another node answers with the leader's name.

  node raft status                  this node's view: leader, term, commit, voters, learners
  node raft add-voter NODE          add NODE as a voter (or promote a learner)
  node raft add-learner NODE        add NODE as a learner (it replicates, does not vote)
  node raft remove NODE             remove a voter or learner
  node raft transfer NODE           hand leadership to the voter NODE

A node added to a running group starts with "node run --raft-join": empty,
it waits to be added and then catches up from the leader (by snapshot when
the log has been compacted).`,
	}
	o.flags(cmd)
	status := &cobra.Command{
		Use:   "status",
		Short: "Print the node's view of its raft group",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := o.call(http.MethodGet, "/v1/raft", "")
			if err != nil {
				return err
			}
			var st consensus.Status
			if err := json.Unmarshal(body, &st); err != nil {
				return fmt.Errorf("the node's status does not decode: %w", err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "node\t%s\t(%s)\n", st.Node, strings.TrimPrefix(st.State, "State"))
			fmt.Fprintf(tw, "leader\t%s\tterm %d\n", cmp.Or(st.Leader, "(none)"), st.Term)
			fmt.Fprintf(tw, "log\tcommit %d\tapplied %d, snapshot %d\n", st.Commit, st.Applied, st.SnapshotIndex)
			fmt.Fprintf(tw, "voters\t%s\t\n", joinNames(st.Voters, " "))
			fmt.Fprintf(tw, "learners\t%s\t\n", cmp.Or(joinNames(st.Learners, " "), "(none)"))
			fmt.Fprintf(tw, "keys\t%d\t\n", st.Keys)
			return tw.Flush()
		},
	}
	cmd.AddCommand(status)
	for _, a := range []struct {
		use, short, method, path string
	}{
		{"add-voter NODE", "Add NODE as a voter, or promote the learner NODE", http.MethodPost, "/v1/raft/voters/"},
		{"add-learner NODE", "Add NODE as a learner", http.MethodPost, "/v1/raft/learners/"},
		{"remove NODE", "Remove the voter or learner NODE", http.MethodDelete, "/v1/raft/members/"},
		{"transfer NODE", "Transfer leadership to the voter NODE", http.MethodPost, "/v1/raft/leader/"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:   a.use,
			Short: a.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if _, err := o.call(a.method, a.path+url.PathEscape(args[0]), ""); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "ok: %s %s\n", strings.Fields(a.use)[0], args[0])
				return nil
			},
		})
	}
	return cmd
}

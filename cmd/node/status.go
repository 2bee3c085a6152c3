package main

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/telemetry"
)

func clusterStatusCmd() *cobra.Command {
	o := &clientOptions{}
	var alerts int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the cluster as a node sees it: members, load, leader, jobs, alerts",
		Long: `status prints the table the dashboard (the node's HTTP address in a browser)
shows: every member with its SWIM state and latest status (CPU of its
process, resident memory as ps and docker stats count it, goroutines,
messages waiting in its protocols' mailboxes, protocol restarts, messages
handled per second, age of the status), the
leader, the jobs with their progress, every active alert and the newest
resolved ones (and events).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var s telemetry.Snapshot
			c, err := o.client()
			if err != nil {
				return err
			}
			if _, err := c.Do(cmd.Context(), http.MethodGet, "/v1/telemetry", nil, &s); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), s)
			}
			return printStatus(cmd.OutOrStdout(), s, alerts)
		},
	}
	o.flags(cmd.Flags())
	cmd.Flags().IntVar(&alerts, "alerts", 5, "alerts to print: every active one, then the newest others up to this many in all (0: none)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the node's snapshot as JSON")
	return cmd
}

// printStatus prints a snapshot as tables.
func printStatus(out io.Writer, s telemetry.Snapshot, alerts int) error {
	leader := s.Leader
	if leader == "" {
		leader = "none"
	}
	fmt.Fprintf(out, "cluster seen from %s at %s: leader %s (term %d)\n\n", s.Node, s.Time.Format(time.TimeOnly), leader, s.Term)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tSTATE\tCPU\tMEMORY\tGOROUTINES\tMAILBOXES\tRESTARTS\tMSGS/S\tLAST STATUS")
	for _, m := range s.Members {
		name := m.Name
		if m.Name == s.Leader {
			name += " *"
		}
		st := m.Status
		if st == nil {
			fmt.Fprintf(w, "%s\t%s\t-\t-\t-\t-\t-\t-\tnone\n", name, m.State)
			continue
		}
		var depth, restarts int64
		var rate float64
		for _, p := range st.Protocols {
			depth += int64(p.MailboxDepth)
			restarts += p.Restarts
			rate += p.InPerSec
		}
		age := fmt.Sprintf("%.1fs ago", s.Time.Sub(m.LastSeen).Seconds())
		if m.Stale {
			age += " (stale)"
		}
		fmt.Fprintf(w, "%s\t%s\t%.0f%%\t%s\t%d\t%d\t%d\t%.1f\t%s\n", name, m.State, st.CPUPercent,
			memory(cmp.Or(st.RSSBytes, st.MemBytes)), st.Goroutines, depth, restarts, rate, age)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "(* leader)")
	if len(s.Jobs) > 0 {
		fmt.Fprintln(out)
		w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "JOB\tCONTACT\tSTATE\tPROGRESS\tERROR")
		for _, j := range s.Jobs {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", j.ID, j.Contact, j.State, bar(j.PartsDone, j.PartsTotal), firstLine(j.Error))
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return printAlerts(out, s.Alerts, alerts)
}

// printAlerts prints every active alert, then the newest others up to n
// alerts in all (list comes active first, then newest first).
func printAlerts(out io.Writer, list []telemetry.Alert, n int) error {
	if n <= 0 || len(list) == 0 {
		return nil
	}
	active := 0
	for _, a := range list {
		if a.State == telemetry.Active {
			active++
		}
	}
	list = list[:min(len(list), max(n, active))]
	fmt.Fprintf(out, "\nALERTS (%d active)\n", active)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "STARTED\tSTATE\tSEVERITY\tMESSAGE\tRAISED BY")
	for _, a := range list {
		state := string(a.State)
		switch a.State {
		case telemetry.Active:
			state = "ACTIVE"
		case telemetry.Resolved:
			state = "resolved " + a.Ended.Format(time.TimeOnly)
		case "":
			state = "event"
		}
		by := string(cmp.Or(a.RaisedBy, a.Origin))
		if others := slices.DeleteFunc(slices.Clone(a.Reporters), func(r actors.NodeName) bool { return string(r) == by }); len(others) > 0 {
			by += " (also " + joinNames(others, ", ") + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", cmp.Or(a.Started, a.Time).Format(time.TimeOnly), state, a.Severity, a.Message, by)
	}
	return w.Flush()
}

// bar draws progress as "[#####.....] 3/6 50%".
func bar(done, total int) string {
	const width = 10
	pct := 0
	if total > 0 {
		pct = 100 * done / total
	}
	n := width * pct / 100
	return fmt.Sprintf("[%s%s] %d/%d %d%%", strings.Repeat("#", n), strings.Repeat(".", width-n), done, total, pct)
}

func memory(b uint64) string {
	const mib = 1 << 20
	if b >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/mib)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// joinNames lists node names for people.
func joinNames(names []actors.NodeName, sep string) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, sep)
}

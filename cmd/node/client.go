package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/jobs"
)

// httpClient is an HTTP client that trusts the CA in caFile (or
// TROUPE_CA) besides the system's, for a node's HTTPS API.
func httpClient(caFile string, timeout time.Duration) (*http.Client, error) {
	caFile = cmp.Or(caFile, os.Getenv("TROUPE_CA"))
	c := &http.Client{Timeout: timeout}
	if caFile == "" {
		return c, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca %s holds no PEM certificate", caFile)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.Transport = t
	return c, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func jobCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "job", Short: "Submit, follow, list and cancel jobs through a node's API"}
	cmd.AddCommand(submitCmd(), statusCmd(), listCmd(), cancelCmd())
	return cmd
}

func submitCmd() *cobra.Command {
	o := &clientOptions{}
	var input, runtime string
	var parts int
	var wait bool
	cmd := &cobra.Command{
		Use:   "submit FILE",
		Short: "Submit the job script in FILE; with --wait, follow it and print the result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			script, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			req := api.SubmitRequest{Runtime: runtime, Script: string(script), Parts: parts, Name: scriptName(args[0])}
			if input != "" {
				in, err := os.ReadFile(input)
				if err != nil {
					return err
				}
				if !json.Valid(in) {
					return fmt.Errorf("--input %s is not valid JSON", input)
				}
				req.Input = in
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var sub jobs.Submitted
			if _, err := c.Do(cmd.Context(), http.MethodPost, "/v1/jobs", req, &sub); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !wait {
				fmt.Fprintln(out, sub.ID)
				return nil
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "job %s submitted to %s\n", sub.ID, c.Base)
			st, err := follow(cmd.Context(), c, sub.ID, cmd.ErrOrStderr(), isTerminal(cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			if st.State != jobs.Succeeded {
				printTraceback(cmd.ErrOrStderr(), st)
				return fmt.Errorf("job %s %s: %s", st.ID, st.State, st.Error)
			}
			return printJSON(out, st.Result)
		},
	}
	o.flags(cmd.Flags())
	cmd.Flags().StringVar(&input, "input", "", "file holding the job's input (JSON)")
	cmd.Flags().StringVar(&runtime, "runtime", "starlark", "starlark or exec")
	cmd.Flags().IntVar(&parts, "parts", 0, "parts to split into (0: the leader picks)")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the job to its end and print its result")
	return cmd
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// follow polls a job until it ends, printing progress: one line rewritten
// in place on a terminal, a line per change otherwise.
func follow(ctx context.Context, c *api.Client, id string, w io.Writer, tty bool) (jobs.Status, error) {
	start := time.Now()
	pr := &progress{w: w, tty: tty, done: -1}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		var st jobs.Status
		if _, err := c.Do(ctx, http.MethodGet, "/v1/jobs/"+id, nil, &st); err != nil {
			return st, err
		}
		pr.show(st, time.Since(start))
		if st.State.Ended() {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-tick.C:
		}
	}
}

// progress prints a followed job's progress lines: when its parts done,
// its percentage, its state or why it waits changes, and at its end.
type progress struct {
	w       io.Writer
	tty     bool // rewrite one line in place
	done    int  // parts done at the last line; -1 before the first
	percent int  // whole percent done at the last line
	state   jobs.State
	waiting string
}

func (p *progress) show(st jobs.Status, elapsed time.Duration) {
	changed := st.Waiting != p.waiting
	percent := int(st.Progress * 100)
	if st.PartsDone == p.done && percent == p.percent && st.State == p.state && !changed && !st.State.Ended() {
		return
	}
	p.done, p.percent, p.state, p.waiting = st.PartsDone, percent, st.State, st.Waiting
	line := progressLine(st, elapsed)
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	// The line that says why the job waits stays (it may be longer than
	// the terminal is wide, and a wrapped line is not rewritten in place).
	if st.State.Ended() || changed && st.Waiting != "" {
		fmt.Fprintln(p.w)
	}
}

// progressLine is one line of a followed job's progress, ending with why
// it cannot progress, while it cannot (jobs.Status.Waiting). The
// percentage counts the running parts' own progress (jobs.Status.Progress),
// and so does the ETA once it is known.
func progressLine(st jobs.Status, elapsed time.Duration) string {
	s := fmt.Sprintf("%-9s parts %d/%d", st.State, st.PartsDone, st.PartsTotal)
	if st.PartsTotal > 0 {
		s += fmt.Sprintf("  %d%%", int(st.Progress*100))
	}
	secs := elapsed.Seconds()
	if st.PartsDone > 0 && secs > 0 {
		s += fmt.Sprintf("  %.1f parts/s", float64(st.PartsDone)/secs)
	}
	if !st.State.Ended() && secs > 0 {
		var eta time.Duration
		switch f := st.Progress; {
		case f > float64(st.PartsDone)/float64(max(st.PartsTotal, 1)) && f < 1:
			eta = time.Duration(secs * (1 - f) / f * float64(time.Second))
		case st.PartsDone > 0 && st.PartsTotal > st.PartsDone:
			eta = time.Duration(float64(st.PartsTotal-st.PartsDone) / (float64(st.PartsDone) / secs) * float64(time.Second))
		}
		if eta > 0 {
			s += fmt.Sprintf("  ETA %v", eta.Round(100*time.Millisecond))
		}
	}
	s += fmt.Sprintf("  %v", elapsed.Round(100*time.Millisecond))
	if st.Waiting != "" && !st.State.Ended() {
		s += "  (" + st.Waiting + ")"
	}
	return s
}

func statusCmd() *cobra.Command {
	o := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Print a job's status, through any node (one that is not the job's contact asks it)",
		Long: `status prints the job's status as JSON. A failed job's "error" is one line;
its "traceback" (the whole error, with the script's traceback) is also
printed as text on stderr.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var st jobs.Status
			c, err := o.client()
			if err != nil {
				return err
			}
			if _, err := c.Do(cmd.Context(), http.MethodGet, "/v1/jobs/"+args[0], nil, &st); err != nil {
				return err
			}
			if err := printJSON(cmd.OutOrStdout(), st); err != nil {
				return err
			}
			printTraceback(cmd.ErrOrStderr(), st)
			return nil
		},
	}
	o.flags(cmd.Flags())
	return cmd
}

// printTraceback prints a job's traceback, when it has one, as text: what
// follows the error's one line.
func printTraceback(w io.Writer, st jobs.Status) {
	tb := st.Traceback
	if first, rest, ok := strings.Cut(tb, "\n"); ok && first == st.Error {
		tb = rest
	}
	if tb = strings.TrimRight(tb, "\n"); tb != "" {
		fmt.Fprintf(w, "%s\n", tb)
	}
}

func listCmd() *cobra.Command {
	o := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the cluster's jobs, through any node",
		Long: `list prints every member's jobs, newest first, one line each (an error
is cut to its first line: job status ID prints all of it). Members that
did not answer in time are named on stderr: their jobs are missing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			l, err := c.ListJobs(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tNAME\tSTATE\tPARTS\tSUBMITTED\tERROR")
			for _, st := range l.Jobs {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", cell(st.ID, 80), cell(cmp.Or(st.Name, "-"), 40), cell(string(st.State), 20),
					st.PartsDone, st.PartsTotal, st.Submitted.Format(time.DateTime), cell(cmp.Or(st.Error, "-"), 1024))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if len(l.Missing) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "partial list: %s did not answer in time; their jobs are missing\n", joinNodeNames(l.Missing))
			}
			if len(l.Truncated) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "partial list: %s hold more jobs than one answer carries; only their newest are listed\n", joinNodeNames(l.Truncated))
			}
			return nil
		},
	}
	o.flags(cmd.Flags())
	return cmd
}

// cell makes s one table cell: its first line, control characters and
// tabs replaced, at most max runes.
func cell(s string, max int) string {
	s, _, cut := strings.Cut(s, "\n")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if r := []rune(s); len(r) > max {
		s, cut = string(r[:max-1]), true
	}
	if cut {
		s += "…"
	}
	return s
}

func joinNodeNames(ns []actors.NodeName) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

// scriptName is the name a submitted script goes by in its job's errors:
// the path as given, cleaned to what a node accepts (printable, at most
// jobs.MaxNameBytes; the base name when the path is longer).
func scriptName(path string) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if !unicode.IsPrint(r) {
				return '?'
			}
			return r
		}, strings.ToValidUTF8(s, "?"))
	}
	name := clean(path)
	if len(name) > jobs.MaxNameBytes {
		name = clean(filepath.Base(path))
	}
	for len(name) > jobs.MaxNameBytes {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return name
}

func cancelCmd() *cobra.Command {
	o := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a job through any node and print its status at its contact",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var st jobs.Status
			c, err := o.client()
			if err != nil {
				return err
			}
			if _, err := c.Do(cmd.Context(), http.MethodDelete, "/v1/jobs/"+args[0], nil, &st); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), st)
		},
	}
	o.flags(cmd.Flags())
	return cmd
}

func membersCmd() *cobra.Command {
	o := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the cluster's members as a node sees them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ms []api.Member
			c, err := o.client()
			if err != nil {
				return err
			}
			if _, err := c.Do(cmd.Context(), http.MethodGet, "/v1/members", nil, &ms); err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tADDRESS\tSTATE")
			for _, m := range ms {
				fmt.Fprintf(w, "%s\t%s\t%s\n", m.Name, m.Address, m.State)
			}
			return w.Flush()
		},
	}
	o.flags(cmd.Flags())
	return cmd
}

func leaderCmd() *cobra.Command {
	o := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "leader",
		Short: "Print the leader a node follows, and its term",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l api.Leader
			c, err := o.client()
			if err != nil {
				return err
			}
			if _, err := c.Do(cmd.Context(), http.MethodGet, "/v1/leader", nil, &l); err != nil {
				return err
			}
			if l.Leader == "" {
				// "no leader: 2 of 5 voters reachable (...)", never an empty name.
				fmt.Fprintf(cmd.OutOrStdout(), "%s (%s, term %d)\n", cmp.Or(l.Message, "no leader"), cmp.Or(l.Reason, "election"), l.Term)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s term %d\n", l.Leader, l.Term)
			return nil
		},
	}
	o.flags(cmd.Flags())
	return cmd
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/election"
	examplejobs "github.com/troupe-dev/troupe/examples/jobs"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/telemetry"
)

type jobsDemo struct {
	nodes, items, parts, resamples int
	timeout                        time.Duration
	verbose, keep                  bool
}

func demoCmd() *cobra.Command {
	d := jobsDemo{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start 5 nodes in this process, elect a leader and run the sample job through the HTTP API",
		Long: `demo starts --nodes nodes in this process on loopback (protoactor remote over
gRPC, SWIM membership with the local preset, the Bully elector, the jobs
protocol and the HTTP API on a free port each), and a small data service.
Once every node follows one leader it submits the sample job
(examples/jobs/scores.star: fetch the catalogue once, score every item,
keep the best) to node-1's API, shows its progress and prints the result.
'demo broadcast' runs the broadcast example instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return d.run(cmd.Context(), cmd.OutOrStdout()) },
	}
	f := cmd.Flags()
	f.IntVar(&d.nodes, "nodes", 5, "nodes in the cluster (2 to 20)")
	f.IntVar(&d.items, "items", 3000, "items the data service serves")
	f.IntVar(&d.parts, "parts", 40, "parts the job is split into")
	f.IntVar(&d.resamples, "resamples", 50, "bootstrap resamples per item (the job's work per item)")
	f.DurationVar(&d.timeout, "timeout", time.Minute, "give up after this long")
	f.BoolVar(&d.verbose, "verbose", false, "log the nodes' warnings to stderr")
	f.BoolVar(&d.keep, "keep", false, "keep the cluster running after the job, until interrupted, to look at the dashboards")
	cmd.AddCommand(broadcastCmd())
	return cmd
}

func (d jobsDemo) run(ctx context.Context, out io.Writer) error {
	if d.nodes < 2 || d.nodes > 20 {
		return fmt.Errorf("--nodes %d: use 2 to 20", d.nodes)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	// Every node's info logs go to the telemetry's buffer (the dashboards
	// show them); with --verbose its warnings go to stderr too.
	logs := telemetry.NewLogBuffer(1000)
	var stderr io.Writer = io.Discard
	if d.verbose {
		stderr = zerolog.ConsoleWriter{Out: os.Stderr}
	}
	logger := zerolog.New(zerolog.MultiLevelWriter(logs, warnOnly{stderr})).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	start := time.Now()

	// The data service the sample job queries.
	dsURL, stopDS, err := serve(&examplejobs.DataService{Items: examplejobs.Items(d.items, 1)})
	if err != nil {
		return err
	}
	defer stopDS()
	u, _ := url.Parse(dsURL)

	c, err := cluster.Local(d.nodes, cluster.Remote(), cluster.Logger(logger),
		cluster.Membership(membership.Config{Preset: membership.PresetLocal}))
	if err != nil {
		return err
	}
	defer c.Stop()
	ef, err := election.New(election.DefaultConfig())
	if err != nil {
		return err
	}
	if err := c.Start(ef); err != nil {
		return err
	}
	star, err := jobs.Starlark(jobs.StarlarkConfig{HTTPAllow: []string{u.Host}})
	if err != nil {
		return err
	}
	cfg := jobs.DefaultConfig()
	cfg.Runtimes = []jobs.Runtime{star}
	cfg.Slots = 1 // one part at a time per node: the cluster shares the work
	jf, err := jobs.New(cfg)
	if err != nil {
		return err
	}
	if err := c.Start(jf); err != nil {
		return err
	}
	tf, err := telemetry.New(telemetry.Config{Logs: logs})
	if err != nil {
		return err
	}
	if err := c.Start(tf); err != nil {
		return err
	}
	apis := map[actors.NodeName]string{}
	for _, n := range c.Nodes() {
		addr, stop, err := serve(api.New(n, api.Config{}))
		if err != nil {
			return err
		}
		defer stop()
		apis[n.Name()] = addr
	}
	fmt.Fprintf(out, "%d nodes up on loopback in %v; data service at %s\n", d.nodes, time.Since(start).Round(time.Millisecond), dsURL)

	// Wait until every node follows the same leader.
	var leader api.Leader
	err = waitUntil(d.timeout, func() bool {
		var first actors.NodeName
		for _, name := range c.Names() {
			var l api.Leader
			if _, err := api.NewClient(apis[name]).Do(ctx, http.MethodGet, "/v1/leader", nil, &l); err != nil || l.Leader == "" {
				return false
			}
			if first == "" {
				first, leader = l.Leader, l
			} else if l.Leader != first {
				return false
			}
		}
		return true
	})
	if err != nil {
		return errors.New("the nodes did not agree on a leader")
	}
	fmt.Fprintf(out, "leader %s (term %d), elected %v after start\n", leader.Leader, leader.Term, time.Since(start).Round(time.Millisecond))
	var members []api.Member
	contact := api.NewClient(apis[c.Names()[0]])
	if _, err := contact.Do(ctx, http.MethodGet, "/v1/members", nil, &members); err != nil {
		return err
	}
	for _, m := range members {
		fmt.Fprintf(out, "  member %-8s %-8s api and dashboard %s\n", m.Name, m.State, apis[m.Name])
	}

	input, _ := json.Marshal(map[string]any{"service": dsURL, "resamples": d.resamples})
	var sub jobs.Submitted
	if _, err := contact.Do(ctx, http.MethodPost, "/v1/jobs", api.SubmitRequest{Script: examplejobs.Scores, Input: input, Parts: d.parts}, &sub); err != nil {
		return err
	}
	fmt.Fprintf(out, "submitted the sample job to %s: POST %s/v1/jobs → %s\n", c.Names()[0], contact.Base, sub.ID)
	st, err := follow(ctx, contact, sub.ID, out, isTerminal(out))
	if err != nil {
		return err
	}
	if st.State != jobs.Succeeded {
		return fmt.Errorf("job %s %s: %s", st.ID, st.State, st.Error)
	}
	fmt.Fprintln(out, "parts run per node:")
	var runs, backups int64
	for _, n := range c.Nodes() {
		s, err := actors.Call(ctx, n, jobs.Name, jobs.StatsRequest{})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  %s %d\n", n.Name(), s.PartsRun)
		runs, backups = runs+s.PartsRun, backups+s.Backups
	}
	if extra := runs - int64(st.PartsTotal); extra > 0 {
		// A run counts where it ends, whichever copy wins: near the end of
		// a job the leader starts backup copies of slow parts on idle
		// nodes, and the first result of a part is kept.
		why := fmt.Sprintf("the leader started %d backup %s of slow parts near the end", backups, plural(backups, "copy", "copies"))
		if backups == 0 {
			why = "a part ran again after its worker was taken for failed"
		}
		fmt.Fprintf(out, "  %d runs for %d parts: %s; a run counts where it ends, and the first result of each part is kept\n", runs, st.PartsTotal, why)
	}
	fmt.Fprintf(out, "result of %s (%v from submission):\n", st.ID, st.Ended.Sub(st.Submitted).Round(time.Millisecond))
	if err := printJSON(out, st.Result); err != nil || !d.keep {
		return err
	}
	fmt.Fprintf(out, "the cluster keeps running (--keep): dashboards at %s; interrupt to stop\n", apis[c.Names()[0]])
	wait, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-wait.Done()
	return nil
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// warnOnly passes on warnings and worse.
type warnOnly struct{ w io.Writer }

func (w warnOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

func (w warnOnly) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l < zerolog.WarnLevel {
		return len(p), nil
	}
	return w.w.Write(p)
}

// serve serves h on a free loopback port until stop is called.
func serve(h http.Handler) (base string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := newServer(h, defaultServerLimits())
	streamsEnd(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

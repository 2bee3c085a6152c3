package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/membership"
)

// emptyJob's parts do nothing: a job's time is all scheduling overhead.
const emptyJob = `
def split(input, n):
    return list(range(n))

def run(part):
    return part

def merge(results):
    return len(results)
`

type jobsBench struct {
	nodes, parts, trials, slots, prefetch int
	timeout                               time.Duration
	out                                   io.Writer
}

func jobsBenchCmd() *cobra.Command {
	b := &jobsBench{}
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "Per-part scheduling overhead of the jobs protocol, with empty parts, on loopback",
		Long: `Starts --nodes nodes in this process on loopback gRPC with SWIM membership
(local preset), the Bully elector and the jobs protocol, then submits
--trials jobs of --parts empty parts (run(part) returns part) to node-1 and
times each from submission to its end at the contact. Every part costs an
assignment (leader → worker), a result (worker → contact), a done notice
(contact → leader) and a credit (worker → leader), plus acknowledgements,
so the time per part is the protocol's overhead:
  part_overhead_us  job time / parts, median of the trials (all nodes
                    working at once: the cluster's cost per part);
  msgs_per_part     jobs-protocol messages sent, acks included, per part.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b.out = cmd.OutOrStdout()
			return b.run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.IntVar(&b.nodes, "nodes", 5, "nodes in the cluster (1 to 20)")
	f.IntVar(&b.parts, "parts", 5000, "parts per job")
	f.IntVar(&b.trials, "trials", 5, "jobs, one after another")
	f.IntVar(&b.slots, "slots", 0, "parts run at once per node (0: GOMAXPROCS)")
	f.IntVar(&b.prefetch, "prefetch", 0, "parts a worker holds beyond its slots (0: the default, 1; -1: none)")
	f.DurationVar(&b.timeout, "timeout", 2*time.Minute, "give up on a job after this long")
	return cmd
}

func (b *jobsBench) run(ctx context.Context) error {
	if b.nodes < 1 || b.nodes > 20 {
		return fmt.Errorf("--nodes %d: use 1 to 20", b.nodes)
	}
	if b.parts < 1 || b.parts > 10000 {
		return fmt.Errorf("--parts %d: use 1 to 10000", b.parts)
	}
	c, err := startJobsCluster(b.nodes, func(cfg *jobs.Config) {
		cfg.Slots, cfg.Prefetch = b.slots, b.prefetch
	})
	if err != nil {
		return err
	}
	defer c.Stop()
	contact := c.Nodes()[0]
	var per []time.Duration
	var msgs []float64
	for trial := range b.trials {
		before := jobsMessages(c)
		sub, err := actors.Call(ctx, contact, jobs.Name, jobs.Submit{Script: emptyJob, Parts: b.parts})
		if err != nil {
			return err
		}
		st, err := awaitJob(ctx, contact, sub.ID, b.timeout)
		if err != nil {
			return err
		}
		if st.State != jobs.Succeeded || string(st.Result) != fmt.Sprint(b.parts) {
			return fmt.Errorf("trial %d: job %s %s (%s), result %s", trial+1, st.ID, st.State, st.Error, st.Result)
		}
		took := st.Ended.Sub(st.Submitted)
		per = append(per, took/time.Duration(b.parts))
		m := float64(jobsMessages(c)-before) / float64(b.parts)
		msgs = append(msgs, m)
		fmt.Fprintf(b.out, "# trial %d: %d parts in %s s, %.1f µs per part, %.1f messages per part\n",
			trial+1, b.parts, secs(took), us(took/time.Duration(b.parts)), m)
	}
	runs := map[actors.NodeName]int64{}
	for _, n := range c.Nodes() {
		s, err := actors.Call(ctx, n, jobs.Name, jobs.StatsRequest{})
		if err != nil {
			return err
		}
		runs[n.Name()] = s.PartsRun
	}
	slices.Sort(msgs)
	tw := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "nodes\tparts\ttrials\tpart overhead p50 µs\tmin µs\tmax µs\tmsgs/part\t")
	fmt.Fprintf(tw, "%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t\n", b.nodes, b.parts, len(per),
		us(quantile(per, 0.5)), us(slices.Min(per)), us(slices.Max(per)), msgs[len(msgs)/2])
	_ = tw.Flush()
	var spread []string
	for _, n := range c.Names() {
		spread = append(spread, fmt.Sprintf("%s=%d", n, runs[n]))
	}
	fmt.Fprintf(b.out, "# parts run per node over all trials: %s\n", strings.Join(spread, " "))
	fmt.Fprintf(b.out, "nodes=%d parts=%d trials=%d msgs_per_part=%.1f part_overhead_us=%.1f\n",
		b.nodes, b.parts, len(per), msgs[len(msgs)/2], us(quantile(per, 0.5)))
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// startJobsCluster starts n nodes on loopback with membership, Bully and
// jobs, and waits until every node's jobs protocol follows the leader.
func startJobsCluster(n int, mod func(*jobs.Config)) (*cluster.Cluster, error) {
	c, err := cluster.Local(n, cluster.Remote(), cluster.Logger(zerolog.Nop()),
		cluster.Membership(membership.Config{Preset: membership.PresetLocal}))
	if err != nil {
		return nil, err
	}
	cfg := jobs.DefaultConfig()
	mod(&cfg)
	jf, err := jobs.New(cfg)
	var ef actors.Factory
	if err == nil {
		ef, err = election.New(election.DefaultConfig())
	}
	if err == nil {
		err = c.Start(ef)
	}
	if err == nil {
		err = c.Start(jf)
	}
	if err == nil {
		leader := c.Names()[n-1]
		err = waitUntil(time.Minute, func() bool {
			for _, node := range c.Nodes() {
				s, err := actors.Call(context.Background(), node, jobs.Name, jobs.StatsRequest{})
				if err != nil || s.Leader != leader {
					return false
				}
			}
			return true
		})
	}
	if err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

func awaitJob(ctx context.Context, n *actors.Node, id string, timeout time.Duration) (jobs.Status, error) {
	var st jobs.Status
	var err error
	werr := waitUntil(timeout, func() bool {
		st, err = actors.Call(ctx, n, jobs.Name, jobs.StatusRequest{ID: id})
		return err != nil || st.State.Ended()
	})
	if err != nil {
		return st, err
	}
	if werr != nil {
		return st, fmt.Errorf("job %s not done within %v: %d of %d parts", id, timeout, st.PartsDone, st.PartsTotal)
	}
	return st, nil
}

// jobsMessages counts the jobs protocol's network messages sent by every
// node, acks included.
func jobsMessages(c *cluster.Cluster) int64 {
	var total int64
	for _, n := range c.Nodes() {
		total += n.Stats().Protocols[jobs.Name].Network().MsgsOut
	}
	return total
}

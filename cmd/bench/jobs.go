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
so the time per part is the protocol's overhead. With empty parts the
leader's own worker, whose credits come back without a network round
trip, takes most parts; so the bench runs twice: with every node's worker,
then with the leader's worker drained (jobs.DrainRequest: it takes no
parts, the leader still schedules), so that every part crosses the
network — assignment and credit between leader and worker, result to the
contact (node-1), done notice to the leader:
  part_overhead_us         job time / parts, median of the trials, every
                           worker (the cluster's cost per part);
  msgs_per_part            jobs-protocol messages sent, acks included,
                           per part;
  leader_share             the fraction of the parts the leader's own
                           worker ran;
  remote_part_overhead_us  part_overhead_us without the leader's worker;
  remote_msgs_per_part     msgs_per_part without it;
  remote_fairness          Jain's index of the parts per node without it
                           ((Σx)²/(n·Σx²): 1 when every worker ran as
                           many, 1/n when one ran all).`,
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
	leader := c.Names()[b.nodes-1]
	all, err := b.phase(ctx, c, "every worker", "")
	if err != nil {
		return err
	}
	remote := all
	if b.nodes > 1 {
		if _, err := actors.Call(ctx, c.Node(leader), jobs.Name, jobs.DrainRequest{}); err != nil {
			return fmt.Errorf("draining the leader's worker: %w", err)
		}
		if remote, err = b.phase(ctx, c, "the leader's worker drained", leader); err != nil {
			return err
		}
		if n := remote.runs[leader]; n > 0 {
			return fmt.Errorf("the leader's drained worker ran %d parts", n)
		}
	}
	tw := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workers\tnodes\tparts\ttrials\tpart overhead p50 µs\tmin µs\tmax µs\tmsgs/part\tleader share\tfairness\t")
	for _, ph := range []*jobsPhase{all, remote} {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.2f\t\n", ph.name, b.nodes, b.parts, len(ph.per),
			us(quantile(ph.per, 0.5)), us(slices.Min(ph.per)), us(slices.Max(ph.per)), medianOf(ph.msgs),
			ph.share(leader), ph.fairness(c.Names()))
		if b.nodes == 1 {
			break
		}
	}
	_ = tw.Flush()
	for _, ph := range []*jobsPhase{all, remote} {
		var spread []string
		for _, n := range c.Names() {
			spread = append(spread, fmt.Sprintf("%s=%d", n, ph.runs[n]))
		}
		fmt.Fprintf(b.out, "# parts per node, %s (by the contact's count; leader %s): %s\n", ph.name, leader, strings.Join(spread, " "))
	}
	fmt.Fprintf(b.out, "nodes=%d parts=%d trials=%d msgs_per_part=%.1f part_overhead_us=%.1f leader_share=%.2f remote_part_overhead_us=%.1f remote_msgs_per_part=%.1f remote_fairness=%.2f\n",
		b.nodes, b.parts, len(all.per), medianOf(all.msgs), us(quantile(all.per, 0.5)), all.share(leader),
		us(quantile(remote.per, 0.5)), medianOf(remote.msgs), remote.fairness(c.Names()))
	return nil
}

// jobsPhase is one series of trials of `bench jobs`.
type jobsPhase struct {
	name    string
	drained actors.NodeName         // the node whose worker takes no parts ("" none)
	per     []time.Duration         // job time per part, by trial
	msgs    []float64               // messages per part, by trial
	runs    map[actors.NodeName]int // parts per node (the contact's PartsByNode), all trials
}

// phase runs the trials: one job of b.parts empty parts after another,
// submitted to node-1.
func (b *jobsBench) phase(ctx context.Context, c *cluster.Cluster, name string, drained actors.NodeName) (*jobsPhase, error) {
	ph := &jobsPhase{name: name, drained: drained, runs: map[actors.NodeName]int{}}
	contact := c.Nodes()[0]
	for trial := range b.trials {
		before := jobsMessages(c)
		sub, err := actors.Call(ctx, contact, jobs.Name, jobs.Submit{Script: emptyJob, Parts: b.parts})
		if err != nil {
			return nil, err
		}
		st, err := awaitJob(ctx, contact, sub.ID, b.timeout)
		if err != nil {
			return nil, err
		}
		if st.State != jobs.Succeeded || string(st.Result) != fmt.Sprint(b.parts) {
			return nil, fmt.Errorf("%s, trial %d: job %s %s (%s), result %s", name, trial+1, st.ID, st.State, st.Error, st.Result)
		}
		took := st.Ended.Sub(st.Submitted)
		ph.per = append(ph.per, took/time.Duration(b.parts))
		m := float64(jobsMessages(c)-before) / float64(b.parts)
		ph.msgs = append(ph.msgs, m)
		for n, k := range st.PartsByNode {
			ph.runs[n] += k
		}
		fmt.Fprintf(b.out, "# %s, trial %d: %d parts in %s s, %.1f µs per part, %.1f messages per part\n",
			name, trial+1, b.parts, secs(took), us(took/time.Duration(b.parts)), m)
	}
	return ph, nil
}

// share is the fraction of the phase's parts node n ran.
func (ph *jobsPhase) share(n actors.NodeName) float64 {
	total := 0
	for _, k := range ph.runs {
		total += k
	}
	if total == 0 {
		return 0
	}
	return float64(ph.runs[n]) / float64(total)
}

// fairness is Jain's index of the parts per worker (names, the drained
// one left out): (Σx)²/(n·Σx²), 1 when each ran as many, 1/n when one ran
// them all.
func (ph *jobsPhase) fairness(names []actors.NodeName) float64 {
	var xs []float64
	for _, n := range names {
		if n != ph.drained {
			xs = append(xs, float64(ph.runs[n]))
		}
	}
	return jain(xs)
}

func jain(xs []float64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 0
	}
	return sum * sum / (float64(len(xs)) * sq)
}

// medianOf is the middle of xs (the mean of the two middle ones for an
// even count); 0 for none. xs is not changed.
func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
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

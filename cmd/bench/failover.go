package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/membership"
)

type failoverBench struct {
	nodes   int
	trials  int
	preset  string
	timeout time.Duration
	out     io.Writer
}

func failoverCmd() *cobra.Command {
	b := &failoverBench{}
	cmd := &cobra.Command{
		Use:   "failover",
		Short: "Bully leader election on loopback with SWIM membership: time to agree on a new leader after the leader dies",
		Long: `Starts --nodes nodes in this process on loopback gRPC, with SWIM membership
(--preset) and the Bully elector. Each trial waits until every node follows
the highest node, kills it (no goodbye), and measures until every live node
follows its successor:
  failover   from the kill to the last live node following the successor;
  detection  from the kill to the first live node declaring the leader failed;
  election   failover minus detection: the election itself.
The killed node then restarts under its name and takes the lead back; once
every view has every node alive and membership has been quiet for a
second, the next trial begins.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b.out = cmd.OutOrStdout()
			return b.run()
		},
	}
	f := cmd.Flags()
	f.IntVar(&b.nodes, "nodes", 5, "nodes in the cluster (3 to 50)")
	f.IntVar(&b.trials, "trials", 20, "leaders killed, one after another")
	f.StringVar(&b.preset, "preset", membership.PresetLocal, "membership timing preset")
	f.DurationVar(&b.timeout, "timeout", time.Minute, "give up on a trial after this long")
	return cmd
}

func (b *failoverBench) run() error {
	if b.nodes < 3 || b.nodes > 50 {
		return fmt.Errorf("--nodes %d: use 3 to 50", b.nodes)
	}
	if b.trials < 1 {
		return fmt.Errorf("--trials %d: at least 1", b.trials)
	}
	if !slices.Contains(membership.Presets, b.preset) {
		return fmt.Errorf("--preset %q is unknown; valid presets are %v", b.preset, membership.Presets)
	}
	c, err := cluster.Local(b.nodes, cluster.Remote(), cluster.Logger(zerolog.Nop()),
		cluster.Membership(membership.Config{Preset: b.preset}))
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
	names := c.Names()
	leader := names[len(names)-1] // the highest by name
	var failover, detection, elect []time.Duration
	for trial := range b.trials {
		if err := b.waitFollow(c, names, leader); err != nil {
			return fmt.Errorf("trial %d: before the kill: %w", trial+1, err)
		}
		if err := b.waitSettled(c, names); err != nil {
			return fmt.Errorf("trial %d: before the kill: %w", trial+1, err)
		}
		survivors := slices.DeleteFunc(slices.Clone(names), func(n actors.NodeName) bool { return n == leader })
		successor := survivors[len(survivors)-1]

		var mu sync.Mutex
		detected := time.Time{}
		var cancels []func()
		for _, n := range survivors {
			_, cancel := c.Member(n).Subscribe(func(ev membership.Event) {
				if _, ok := ev.(*membership.MemberFailed); ok && ev.Of().Name == leader {
					mu.Lock()
					if detected.IsZero() {
						detected = time.Now()
					}
					mu.Unlock()
				}
			})
			cancels = append(cancels, cancel)
		}
		killed := time.Now()
		crashed := make(chan error, 1)
		go func() { crashed <- c.Crash(leader) }()
		if err := b.waitFollow(c, survivors, successor); err != nil {
			return fmt.Errorf("trial %d: after killing %s: %w", trial+1, leader, err)
		}
		agreed := time.Now()
		for _, cancel := range cancels {
			cancel()
		}
		mu.Lock()
		det := detected
		mu.Unlock()
		if det.IsZero() || det.After(agreed) {
			det = agreed // the successor took over before any node declared the leader failed
		}
		failover = append(failover, agreed.Sub(killed))
		detection = append(detection, det.Sub(killed))
		elect = append(elect, agreed.Sub(det))
		fmt.Fprintf(b.out, "# trial %d: killed %s, all %d follow %s after %s s (detection %s s, election %s s)\n",
			trial+1, leader, len(survivors), successor, secs(agreed.Sub(killed)), secs(det.Sub(killed)), secs(agreed.Sub(det)))
		if err := <-crashed; err != nil {
			return fmt.Errorf("trial %d: killing %s: %w", trial+1, leader, err)
		}
		if _, err := c.Restart(leader); err != nil {
			return fmt.Errorf("trial %d: restarting %s: %w", trial+1, leader, err)
		}
	}

	tw := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "nodes\tpreset\ttrials\tfailover p50 s\tfailover p99 s\tdetection p50 s\tdetection p99 s\telection p50 s\telection p99 s\t")
	fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", b.nodes, b.preset, len(failover),
		secs(quantile(failover, 0.5)), secs(quantile(failover, 0.99)),
		secs(quantile(detection, 0.5)), secs(quantile(detection, 0.99)),
		secs(quantile(elect, 0.5)), secs(quantile(elect, 0.99)))
	_ = tw.Flush()
	fmt.Fprintln(b.out, strings.Join([]string{
		fmt.Sprintf("nodes=%d", b.nodes), fmt.Sprintf("trials=%d", len(failover)), "preset=" + b.preset,
		"failover_p50_s=" + secs(quantile(failover, 0.5)), "failover_p99_s=" + secs(quantile(failover, 0.99)),
		"detection_p50_s=" + secs(quantile(detection, 0.5)), "detection_p99_s=" + secs(quantile(detection, 0.99)),
		"election_p50_s=" + secs(quantile(elect, 0.5)), "election_p99_s=" + secs(quantile(elect, 0.99)),
	}, " "))
	return nil
}

// settle is how long membership must stay quiet before a kill: news of the
// previous kill and of the restart (a dead message about the earlier run
// of a name can make the new run refute it) must have died down, or the
// next trial measures that churn instead of a failover.
const settle = time.Second

// waitSettled waits until every node's view has every node alive, in the
// generation that runs now, and no membership event happened for settle.
func (b *failoverBench) waitSettled(c *cluster.Cluster, names []actors.NodeName) error {
	var mu sync.Mutex
	last := time.Now()
	var cancels []func()
	for _, n := range names {
		_, cancel := c.Member(n).Subscribe(func(membership.Event) {
			mu.Lock()
			last = time.Now()
			mu.Unlock()
		})
		cancels = append(cancels, cancel)
	}
	defer func() {
		for _, cancel := range cancels {
			cancel()
		}
	}()
	gen := map[actors.NodeName]uint64{}
	for _, n := range names {
		gen[n] = c.Member(n).View().Self.Generation
	}
	return waitUntil(b.timeout, func() bool {
		for _, n := range names {
			for _, mem := range c.Member(n).View().Members {
				if mem.State != membership.Alive || mem.Generation != gen[mem.Name] {
					return false
				}
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return time.Since(last) >= settle
	})
}

// waitFollow polls until every node in names follows leader, all at one
// term.
func (b *failoverBench) waitFollow(c *cluster.Cluster, names []actors.NodeName, leader actors.NodeName) error {
	var last []string
	err := waitUntil(b.timeout, func() bool {
		last = last[:0]
		terms := map[uint64]bool{}
		ok := true
		for _, n := range names {
			node := c.Node(n)
			if node == nil {
				return false
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			l, err := actors.Call(ctx, node, election.Name, election.LeaderRequest{})
			cancel()
			if err != nil {
				last = append(last, string(n)+": "+err.Error())
				ok = false
				continue
			}
			last = append(last, fmt.Sprintf("%s→%s@%d", n, l.Name, l.Term))
			terms[l.Term] = true
			ok = ok && l.Name == leader
		}
		return ok && len(terms) == 1
	})
	if err != nil {
		return fmt.Errorf("not every node follows %s: %v: %w", leader, last, err)
	}
	return nil
}

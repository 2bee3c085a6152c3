package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/examples/broadcast"
)

type demoOptions struct {
	nodes, messages int
	timeout         time.Duration
	verbose         bool
}

func broadcastCmd() *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "broadcast",
		Short: "Start an in-process cluster on loopback and run the broadcast example",
		Long: `demo broadcast starts --nodes nodes in this process, each listening on its own loopback
port (protoactor remote over gRPC), runs the GFDS broadcast example on them,
has every node broadcast --messages messages, waits until every node has
delivered every message, and prints per node what it delivered and what it
sent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd.OutOrStdout(), o) },
	}
	cmd.Flags().IntVar(&o.nodes, "nodes", 5, "nodes in the cluster (2 to 50)")
	cmd.Flags().IntVar(&o.messages, "messages", 20, "broadcasts per node (1 to 10000)")
	cmd.Flags().DurationVar(&o.timeout, "timeout", time.Minute, "give up after this long")
	cmd.Flags().BoolVar(&o.verbose, "verbose", false, "log the nodes' warnings to stderr")
	return cmd
}

func runDemo(out io.Writer, o demoOptions) error {
	if o.nodes < 2 || o.nodes > 50 {
		return fmt.Errorf("--nodes %d: use 2 to 50", o.nodes)
	}
	if o.messages < 1 || o.messages > 10000 {
		return fmt.Errorf("--messages %d: use 1 to 10000", o.messages)
	}
	logger := zerolog.Nop()
	if o.verbose {
		logger = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	}
	start := time.Now()
	c, err := cluster.Local(o.nodes, cluster.Remote(), cluster.Logger(logger))
	if err != nil {
		return err
	}
	defer c.Stop()
	delivered := make([]atomicCount, o.nodes)
	for i, n := range c.Nodes() {
		cancel, err := actors.Observe(n, func(*broadcast.DeliverReply) { delivered[i].add() })
		if err != nil {
			return err
		}
		defer cancel()
	}
	cfg := broadcast.DefaultConfig()
	cfg.Neighbours = c.Names()
	if err := c.Start(broadcast.New(cfg)); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d nodes up on loopback in %v:", o.nodes, time.Since(start).Round(time.Millisecond))
	for _, n := range c.Nodes() {
		fmt.Fprintf(out, " %s=%s", n.Name(), n.Address())
	}
	fmt.Fprintln(out)

	sent := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	for range o.messages {
		for _, n := range c.Nodes() {
			if _, err := actors.Call(ctx, n, broadcast.Name, &broadcast.BroadcastRequest{Payload: []byte("hello from " + n.Name())}); err != nil {
				return err
			}
		}
	}
	want := int64(o.nodes * o.messages)
	err = waitUntil(o.timeout, func() bool {
		for i := range delivered {
			if delivered[i].load() < want {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("not every node delivered %d broadcasts: %w", want, err)
	}
	elapsed := time.Since(sent)

	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "node\tdelivered\tmsgs sent\tbytes sent\tmsgs received\tbytes received\t")
	var totalMsgs, totalBytes int64
	for i, n := range c.Nodes() {
		s := n.Stats().Protocols[broadcast.Name].Network()
		totalMsgs += s.MsgsOut
		totalBytes += s.BytesOut
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t\n", n.Name(), delivered[i].load(), s.MsgsOut, s.BytesOut, s.MsgsIn, s.BytesIn)
	}
	_ = w.Flush()
	fmt.Fprintf(out, "%d broadcasts delivered on all %d nodes in %v; %d network messages (%d bytes, acks included) sent, %.1f per broadcast\n",
		want, o.nodes, elapsed.Round(time.Millisecond), totalMsgs, totalBytes, float64(totalMsgs)/float64(want))
	return nil
}

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
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/mutex"
)

// kvOptions are the flags of kv and raft: the client's, and --timeout.
type kvOptions struct{ clientOptions }

// flags adds the client's flags and --timeout to cmd and its subcommands.
func (o *kvOptions) flags(cmd *cobra.Command) {
	o.clientOptions.flags(cmd.PersistentFlags())
	cmd.PersistentFlags().DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the node")
}

func kvCmd() *cobra.Command {
	o := &kvOptions{}
	cmd := &cobra.Command{
		Use:   "kv",
		Short: "Use the replicated key-value store of a node over HTTP",
		Long: `kv talks to the HTTP API of a node's replicated key-value store (package
consensus): any node of the raft group serves every request.

  node kv put KEY VALUE [--prev OLD]   set KEY (compare-and-set with --prev)
  node kv get KEY                      print the value
  node kv del KEY                      delete KEY
  node kv serve                        run a raft group in this process, with the API`,
	}
	o.flags(cmd)

	var prev string
	put := &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Set KEY to VALUE (with --prev: only if it holds that value)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := ""
			if cmd.Flags().Changed("prev") {
				q = "?prev=" + url.QueryEscape(prev)
			}
			body, err := o.call(http.MethodPut, kvPath(args[0])+q, args[1])
			if err != nil {
				return err
			}
			var r struct{ Index uint64 }
			_ = json.Unmarshal(body, &r)
			fmt.Fprintf(cmd.OutOrStdout(), "ok (index %d)\n", r.Index)
			return nil
		},
	}
	put.Flags().StringVar(&prev, "prev", "", "compare-and-set: the value KEY must hold")
	get := &cobra.Command{
		Use:   "get KEY",
		Short: "Print the value of KEY (linearizable read)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := o.call(http.MethodGet, kvPath(args[0]), "")
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", body)
			return nil
		},
	}
	del := &cobra.Command{
		Use:   "del KEY",
		Short: "Delete KEY",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := o.call(http.MethodDelete, kvPath(args[0]), "")
			if err != nil {
				return err
			}
			var r struct{ Existed bool }
			_ = json.Unmarshal(body, &r)
			if r.Existed {
				fmt.Fprintln(cmd.OutOrStdout(), "deleted")
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), "deleted (it did not exist)")
			}
			return nil
		},
	}
	cmd.AddCommand(put, get, del, kvServeCmd())
	return cmd
}

func kvPath(key string) string { return "/v1/kv/" + url.PathEscape(key) }

// call sends one request to path and returns the body of a 200, or the
// error the node explained.
func (o *kvOptions) call(method, path, body string) ([]byte, error) {
	c, err := o.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err // explain names the address
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return b, nil
	}
	var e struct{ Error, Code, Current, Leader string }
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	switch e.Code {
	case "cas_failed":
		return nil, fmt.Errorf("%s (current value %q)", e.Error, e.Current)
	case "not_leader":
		if e.Leader != "" {
			return nil, fmt.Errorf("%s: send it to %s's API (%s)", e.Error, e.Leader, e.Code)
		}
	case "no_quorum":
		// Not "retry": this node cannot serve it until voters come back.
		return nil, fmt.Errorf("%s (%s: not applied; a node on the majority's side may serve it)", e.Error, e.Code)
	case "election", "not_applied":
		return nil, fmt.Errorf("%s (%s: not applied; safe to retry)", e.Error, e.Code)
	case "unknown":
		return nil, fmt.Errorf("%s (%s: it may or may not have been applied; read the key before writing it again)", e.Error, e.Code)
	}
	return nil, fmt.Errorf("%s (%s)", e.Error, e.Code)
}

type kvServeOptions struct {
	nodes   int
	listen  string
	dataDir string
	noSync  bool
	// insecure: serve beyond loopback (the API has no token).
	insecure bool
}

func kvServeCmd() *cobra.Command {
	o := kvServeOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a raft group of --nodes nodes in this process, each with the HTTP API",
		Long: `serve starts --nodes nodes on loopback gRPC in this process, runs the raft
protocol on them with their data in --data-dir/<node>, and serves the HTTP
API of node i on the port of --listen plus i-1. It runs until interrupted.
Started again with the same --data-dir, the group resumes where it stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			return runKVServe(ctx, cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().IntVar(&o.nodes, "nodes", 3, "nodes in the group (1 to 9)")
	cmd.Flags().StringVar(&o.listen, "listen", "127.0.0.1:8080", "HTTP address of node-1; node i listens on the port plus i-1")
	cmd.Flags().StringVar(&o.dataDir, "data-dir", "troupe-data", "root of the nodes' data dirs")
	cmd.Flags().BoolVar(&o.insecure, "insecure-api", false, "allow a --listen beyond loopback: the API has no token, anyone who reaches it can write")
	cmd.Flags().BoolVar(&o.noSync, "no-fsync", false, "turn fsync off (benchmarks only: acknowledged writes can be lost in a machine crash)")
	return cmd
}

func runKVServe(ctx context.Context, out io.Writer, o kvServeOptions) error {
	if o.nodes < 1 || o.nodes > 9 {
		return fmt.Errorf("--nodes %d: use 1 to 9", o.nodes)
	}
	host, portStr, err := net.SplitHostPort(o.listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", o.listen, err)
	}
	if !isLoopback(o.listen) && !o.insecure {
		return fmt.Errorf("--listen %q is not a loopback address and this API has no token: listen on 127.0.0.1, or add --insecure-api to serve it open on purpose", o.listen)
	}
	var port int
	if _, err := fmt.Sscan(portStr, &port); err != nil || port < 1 || port+o.nodes > 65536 {
		return fmt.Errorf("--listen %q: want host:port with a port from 1 to %d", o.listen, 65536-o.nodes)
	}
	c, err := cluster.Local(o.nodes, cluster.Remote())
	if err != nil {
		return err
	}
	defer c.Stop()
	cfg := consensus.DefaultConfig()
	cfg.DataDir, cfg.Peers, cfg.NoSync = o.dataDir, c.Names(), o.noSync
	cfg.Machines = []consensus.Machine{kv.DefaultMachine(), mutex.LockMachine()}
	rf, err := consensus.New(cfg)
	if err != nil {
		return err
	}
	if err := c.Start(rf); err != nil {
		return err
	}
	var servers []*http.Server
	errs := make(chan error, o.nodes)
	for i, n := range c.Nodes() {
		kc, err := kv.NewClient(n)
		if err != nil {
			return err
		}
		addr := net.JoinHostPort(host, fmt.Sprint(port+i))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		srv := newServer(kv.HTTPHandler(kc), defaultServerLimits())
		servers = append(servers, srv)
		go func() { errs <- srv.Serve(ln) }()
		fmt.Fprintf(out, "%s: http://%s/v1/kv/{key}  data %s/%s\n", n.Name(), addr, o.dataDir, n.Name())
	}
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	for _, s := range servers {
		_ = s.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

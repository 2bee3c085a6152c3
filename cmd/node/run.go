package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/transport/remote"
)

type runOptions struct {
	name, bind, advertise, gossip, http, dataDir, preset, logLevel string
	join, httpAllow, execCmd                                       []string
	slots                                                          int
	exec                                                           bool
	maxSteps                                                       uint64
	timeout                                                        time.Duration
}

func runCmd() *cobra.Command {
	o := runOptions{}
	host, _ := os.Hostname()
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run one node: membership, Bully election, jobs and the HTTP API",
		Long: `run starts one Troupe node. It listens for other nodes on --bind (protoactor
remote over gRPC) and for SWIM gossip on --gossip (by default the port after
--bind's), joins the cluster through the gossip addresses in --join (none:
it starts a cluster), elects a leader with Bully and serves the HTTP API on
--http. It stops, leaving the cluster gracefully, on SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runNode(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.name, "name", host, "the node's name, unique in the cluster")
	f.StringVar(&o.bind, "bind", "127.0.0.1:7000", "host:port for other nodes' messages")
	f.StringVar(&o.advertise, "advertise", "", "host other nodes reach this one at, when it differs from --bind's (containers, NAT)")
	f.StringVar(&o.gossip, "gossip", "", "host:port for SWIM gossip (default: --bind's host, its port + 1)")
	f.StringVar(&o.http, "http", "127.0.0.1:8080", "host:port of the HTTP API")
	f.StringSliceVar(&o.join, "join", nil, "gossip addresses (host:port) of members to join through")
	f.StringVar(&o.dataDir, "data-dir", "", "directory for the node's files (exec runtime scripts); default a temporary one")
	f.StringVar(&o.preset, "preset", membership.PresetLAN, "membership timing preset: lan, wan or local")
	f.IntVar(&o.slots, "slots", 0, "parts this node runs at once (default: its CPUs)")
	f.StringSliceVar(&o.httpAllow, "http-allow", nil, "hosts (host or host:port) job scripts may http_get from")
	f.Uint64Var(&o.maxSteps, "max-steps", jobs.DefaultLimits().MaxSteps, "Starlark steps allowed per call")
	f.DurationVar(&o.timeout, "part-timeout", jobs.DefaultLimits().Timeout, "wall-clock limit per call")
	f.BoolVar(&o.exec, "exec", false, "enable the exec runtime (runs --exec-cmd with the node's rights)")
	f.StringSliceVar(&o.execCmd, "exec-cmd", []string{"python3"}, "the exec runtime's interpreter and arguments")
	f.StringVar(&o.logLevel, "log-level", "info", "trace, debug, info, warn, error")
	return cmd
}

// plusOne is addr with its port one higher.
func plusOne(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p == 0 {
		return "", fmt.Errorf("--bind %q: give a fixed port, or set --gossip", addr)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1)), nil
}

func runNode(ctx context.Context, o runOptions) error {
	level, err := zerolog.ParseLevel(o.logLevel)
	if err != nil {
		return fmt.Errorf("--log-level %q: %w", o.logLevel, err)
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}).Level(level).With().Timestamp().Logger()
	if o.gossip == "" {
		if o.gossip, err = plusOne(o.bind); err != nil {
			return err
		}
	}
	var advertise, gossipAdvertise string
	if o.advertise != "" {
		_, port, _ := net.SplitHostPort(o.bind)
		_, gport, _ := net.SplitHostPort(o.gossip)
		// SWIM gossips an IP address, not a name: resolve it (in a
		// container, the hostname resolves to the container's address).
		ip := o.advertise
		if net.ParseIP(ip) == nil {
			ips, err := net.DefaultResolver.LookupIP(ctx, "ip4", o.advertise)
			if err != nil || len(ips) == 0 {
				return fmt.Errorf("--advertise %q does not resolve to an IPv4 address: %v", o.advertise, err)
			}
			ip = ips[0].String()
		}
		advertise, gossipAdvertise = net.JoinHostPort(o.advertise, port), net.JoinHostPort(ip, gport)
	}
	if o.dataDir == "" {
		if o.dataDir, err = os.MkdirTemp("", "troupe-"+o.name+"-"); err != nil {
			return err
		}
		defer os.RemoveAll(o.dataDir)
	} else if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	jcfg, err := jobsConfig(o)
	if err != nil {
		return err
	}
	jf, err := jobs.New(jcfg)
	if err != nil {
		return err
	}

	network, err := remote.New(remote.Config{Bind: o.bind, Advertise: advertise})
	if err != nil {
		return err
	}
	acfg := actors.DefaultConfig()
	acfg.Name, acfg.Network, acfg.Logger = o.name, network, log
	node, err := actors.NewNode(acfg)
	if err != nil {
		return err
	}
	defer node.Stop()
	m, err := membership.New(membership.Config{Name: o.name, Address: node.Address(), Preset: o.preset,
		Bind: o.gossip, Advertise: gossipAdvertise, Seeds: o.join, Logger: log})
	if err != nil {
		return err
	}
	left := false
	defer func() {
		if !left {
			_ = m.Shutdown()
		}
	}()
	if err := m.Join(ctx); err != nil {
		return err
	}
	if _, err := membership.Attach(node, m); err != nil {
		return err
	}
	m.FeedPeers(network)
	if err := node.Start(election.Bully(election.BullyConfig{})); err != nil {
		return err
	}
	if err := node.Start(jf); err != nil {
		return err
	}
	srv := &http.Server{Addr: o.http, Handler: api.New(node, api.Config{}), ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", o.http)
	if err != nil {
		return err
	}
	log.Info().Str("name", o.name).Str("address", node.Address()).Str("gossip", m.GossipAddr()).
		Str("http", ln.Addr().String()).Strs("join", o.join).Msg("node up")

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	log.Info().Msg("stopping: leaving the cluster")
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	<-served
	left = true
	return errors.Join(err, m.Leave(5*time.Second), node.Stop())
}

func jobsConfig(o runOptions) (jobs.Config, error) {
	cfg := jobs.DefaultConfig()
	if o.slots > 0 {
		cfg.Slots = o.slots
	}
	lim := jobs.DefaultLimits()
	lim.MaxSteps, lim.Timeout = o.maxSteps, o.timeout
	var allow []string
	for _, h := range o.httpAllow {
		if h = strings.TrimSpace(h); h != "" {
			allow = append(allow, h)
		}
	}
	star, err := jobs.Starlark(jobs.StarlarkConfig{Limits: lim, HTTPAllow: allow})
	if err != nil {
		return cfg, err
	}
	cfg.Runtimes = []jobs.Runtime{star}
	if o.exec {
		ex, err := jobs.Exec(jobs.ExecConfig{Limits: lim, Command: o.execCmd, Dir: o.dataDir})
		if err != nil {
			return cfg, err
		}
		cfg.Runtimes = append(cfg.Runtimes, ex)
		cfg.Disabled = []string{}
	}
	return cfg, nil
}

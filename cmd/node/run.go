package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/config"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/grains"
	"github.com/troupe-dev/troupe/internal/httpjson"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/mutex"
	"github.com/troupe-dev/troupe/security"
	"github.com/troupe-dev/troupe/telemetry"
	"github.com/troupe-dev/troupe/transport/remote"
)

func runCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run one node: membership, election, jobs, the raft group, the actor cluster and the HTTP API",
		Long: `run starts one Troupe node. It listens for other nodes on --bind (protoactor
remote over gRPC) and for SWIM gossip on --gossip (by default the port after
--bind's), joins the cluster through the gossip addresses in --join (none:
it starts a cluster), elects a leader (--elector) and serves the HTTP API on
--http.

Its configuration comes from --config (a YAML file with the sections node,
membership, election, jobs, raft, telemetry, api and tls), environment variables
TROUPE_<SECTION>_<KEY> (TROUPE_JOBS_SLOTS) and the flags below, each over
the one before; "node config check FILE" validates a file. SIGHUP reads the
file again and applies what changed without a restart ("node config apply"
does the same through the API); a change to a key that needs a restart is
refused whole. SIGTERM or SIGINT stops the node gracefully, within about
3 s: it stops serving the API, hands its job parts back to the leader,
leaves the cluster and stops.

With --raft-peers (the names of the raft group's first voters, this node's
among them) it also runs the raft group (package consensus) with its log
in --data-dir, which serves the replicated key-value store (/v1/kv/{key}),
lease locks with fencing tokens (/v1/locks/{name}) and the group's operator
API (/v1/raft). A node added to a running group later starts with
--raft-join and waits for "node raft add-voter". --elector raft makes the
raft group's leader the cluster's leader (it needs the raft group); bully
(the default) runs the Bully algorithm over the members.

Without an API token (api.token or api.token_file) --http must be a
loopback address: a node that would serve its API beyond loopback without
a token refuses to start, unless --insecure-api says to (then it warns at
every start). The exec runtime, the token and TLS change only with a
restart.

Every node is a member of protoactor's actor cluster (package grains),
on its node port and its membership; the stock binary hosts no grain kind.

Every node runs telemetry: the dashboard at / of --http, Prometheus metrics
at /metrics, alerts and any node's recent logs (package telemetry). Logs
go to stderr for people on a terminal, as JSON lines otherwise (a file, a
pipe, a container's log); --log-format json or console picks one.

docs/operations.md lists every key and how to deploy, secure and upgrade
a cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src := config.Sources{File: file, Env: os.Environ(), Flags: flagValues(cmd)}
			return runNode(cmd.Context(), src)
		},
	}
	d := config.Default()
	f := cmd.Flags()
	f.StringVar(&file, "config", "", "the node's configuration file (YAML); flags and TROUPE_* variables override it")
	// Each flag sets one key (runFlags); only flags given on the command
	// line override the file and the environment.
	f.String("name", "", "the node's name, unique in the cluster (default: the host name) [node.name]")
	f.String("bind", d.Node.Bind, "host:port for other nodes' messages [node.bind]")
	f.String("advertise", "", "host other nodes reach this one at, when it differs from --bind's (containers, NAT) [node.advertise]")
	f.String("gossip", "", "host:port for SWIM gossip (default: --bind's host, its port + 1) [membership.gossip]")
	f.String("http", d.API.Listen, "host:port of the HTTP API [api.listen]")
	f.StringSlice("join", nil, "gossip addresses (host:port) of members to join through [membership.join]")
	f.String("data-dir", "", "directory for the node's files (raft log, exec scripts); default a temporary one [node.data_dir]")
	f.String("preset", d.Membership.Preset, "membership timing preset: lan, wan or local [membership.preset]")
	f.Int("slots", 0, "parts this node runs at once (default: its CPUs) [jobs.slots]")
	f.StringSlice("http-allow", nil, "hosts (host or host:port) job scripts may http_get from [jobs.http_allow]")
	f.Uint64("max-steps", d.Jobs.MaxSteps, "Starlark steps allowed per call [jobs.max_steps]")
	f.Duration("part-timeout", d.Jobs.PartTimeout, "wall-clock limit per call [jobs.part_timeout]")
	f.Bool("exec", false, "enable the exec runtime (runs --exec-cmd with the node's rights) [jobs.exec]")
	f.StringSlice("exec-cmd", d.Jobs.ExecCmd, "the exec runtime's interpreter and arguments [jobs.exec_cmd]")
	f.String("log-level", d.Node.LogLevel, "trace, debug, info, warn, error [node.log_level]")
	f.StringSlice("raft-peers", nil, "names of the raft group's first voters (this node's among them); none: no raft group [raft.peers]")
	f.Bool("raft-join", false, "join a running raft group: start empty and wait to be added (node raft add-voter) [raft.join]")
	f.Bool("force-new-state", false, "when this node's raft state is incomplete or damaged, move it aside and start as a new, empty member; "+
		"remove the node from the group first and add it back after (needs --raft-join; docs/operations.md) [raft.force_new_state]")
	f.String("elector", d.Election.Elector, "leader election: bully, or raft (the raft group's leader; needs --raft-peers or --raft-join) [election.elector]")
	f.String("log-format", d.Node.LogFormat, "auto (console on a terminal, json otherwise), json (zerolog, one object a line) or console (for people) [node.log_format]")
	f.Bool("insecure-api", false, "serve the HTTP API beyond loopback without a token (warned at every start) [api.insecure]")
	f.Bool("protoactor-metrics", false, "add protoactor-go's own metrics to /metrics (costs every message a few µs) [telemetry.protoactor_metrics]")
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
		return "", fmt.Errorf("node.bind %q: give a fixed port, or set membership.gossip (--gossip)", addr)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1)), nil
}

// runNode runs a node until ctx ends or a SIGINT or SIGTERM arrives.
func runNode(ctx context.Context, src config.Sources) error {
	cfg, err := config.Load(src)
	if err != nil {
		return err
	}
	level, _ := zerolog.ParseLevel(cfg.Node.LogLevel)
	log, logs, err := nodeLogger(os.Stderr, cfg.Node.LogFormat, level)
	if err != nil {
		return err
	}
	if err := checkAPIExposure(cfg, log); err != nil {
		return err
	}
	gossip, advertise, gossipAdvertise, err := addresses(ctx, cfg)
	if err != nil {
		return err
	}
	dataDir := cfg.Node.DataDir
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "troupe-"+cfg.Node.Name+"-"); err != nil {
			return err
		}
		defer os.RemoveAll(dataDir)
		if cfg.RaftOn() {
			log.Warn().Str("dir", dataDir).Msg("the raft log is in a temporary directory, removed when the node stops: set node.data_dir (--data-dir)")
		}
	} else if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("node.data_dir: %w", err)
	}
	jcfg, err := cfg.JobsConfig(dataDir)
	if err != nil {
		return err
	}
	jf, err := jobs.New(jcfg)
	if err != nil {
		return err
	}
	var mtls *security.MutualTLS
	if cfg.TLS.CA != "" {
		if mtls, err = security.LoadMutualTLS(security.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key}, log.With().Str("node", cfg.Node.Name).Logger()); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	warnInsecure(log, cfg, gossip)

	network, err := remote.New(remote.Config{Bind: cfg.Node.Bind, Advertise: advertise, TLS: mtls, Logger: log})
	if err != nil {
		return err
	}
	acfg := actors.DefaultConfig()
	acfg.Name, acfg.Network, acfg.Logger = actors.NodeName(cfg.Node.Name), network, log
	metrics, err := nodeMetrics(&acfg, cfg.Telemetry.ProtoactorMetrics)
	if err != nil {
		return err
	}
	node, err := actors.NewNode(acfg)
	if err != nil {
		return err
	}
	metrics.MustRegister(telemetry.NewCollector(node))
	defer node.Stop()
	m, err := membership.New(membership.Config{Name: acfg.Name, Address: node.Address(), Preset: cfg.Membership.Preset,
		Timing: cfg.MembershipTiming(), Broadcasts: cfg.MembershipBroadcasts(), Bind: gossip, Advertise: gossipAdvertise, Seeds: cfg.Membership.Join,
		Memory: membersFile(cfg), Keys: cfg.GossipKeys(), TLS: mtls, Logger: log})
	if err != nil {
		return err
	}
	metrics.MustRegister(telemetry.NewMembershipCollector(m), membership.NewCollector(m))
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
	// The remembered members' addresses go to the network before the raft
	// group starts: it reaches its voters before gossip has found them.
	m.FeedPeers(network)
	// protoactor's actor cluster, on the node's remote and membership: the
	// stock binary hosts no grain kind (kinds are Go code, registered by a
	// program that embeds a node: package grains), but calls the grains of
	// members that host them.
	g, err := grains.Start(node, network, grains.Config{})
	if err != nil {
		return err
	}
	defer g.Stop()

	r := &running{src: src, node: node, log: log, dataDir: dataDir, token: api.NewToken(cfg.APIToken())}
	r.cfg.Store(cfg)
	mux := http.NewServeMux()
	mux.Handle("/", api.New(node, api.Config{Metrics: metrics}))
	r.routes(mux)
	if cfg.RaftOn() {
		// The protocol applies raft.force_new_state when it starts.
		rcfg := cfg.RaftConfig(dataDir)
		rf, err := consensus.New(rcfg)
		if err != nil {
			return err
		}
		if err := node.Start(rf); err != nil {
			return err
		}
		kc, err := kv.NewClient(node)
		if err != nil {
			return err
		}
		h := kv.HTTPHandler(kc)
		mux.Handle("/v1/kv/", h)
		mux.Handle("/v1/raft", h)
		mux.Handle("/v1/raft/", h)
		leases, err := mutex.NewLeases(node)
		if err != nil {
			return err
		}
		mux.Handle("/v1/locks/", mutex.HTTPHandler(leases))
	} else {
		noRaft := func(w http.ResponseWriter, _ *http.Request) {
			httpjson.WriteError(w, http.StatusNotFound, "no_raft",
				errors.New("this node runs no raft group: start it with --raft-peers (the group's first voters) or --raft-join"))
		}
		mux.HandleFunc("/v1/kv/", noRaft)
		mux.HandleFunc("/v1/raft", noRaft)
		mux.HandleFunc("/v1/raft/", noRaft)
		mux.HandleFunc("/v1/locks/", noRaft)
	}
	ef, err := election.New(cfg.ElectionConfig())
	if err != nil {
		return err
	}
	if err := node.Start(ef); err != nil {
		return err
	}
	if err := node.Start(jf); err != nil {
		return err
	}
	tf, err := telemetry.New(telemetry.Config{Logs: logs, Probe: telemetry.SystemProbe(dataDir)})
	if err != nil {
		return err
	}
	if err := node.Start(tf); err != nil {
		return err
	}
	// Every endpoint, those added above and any added later, is behind
	// the token.
	srv := newServer(api.RequireToken(mux, r.token, cfg.API.OpenPaths...), defaultServerLimits())
	streamsEnd(srv)
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api.listen: %w", err)
	}
	log.Info().Str("name", cfg.Node.Name).Str("version", versionString()).Str("address", node.Address()).Str("gossip", m.GossipAddr()).
		Str("http", ln.Addr().String()).Bool("https", cfg.API.TLSCert != "").Strs("join", cfg.Membership.Join).
		Str("elector", cfg.Election.Elector).Strs("raft-peers", cfg.Raft.Peers).Bool("raft-join", cfg.Raft.Join).
		Bool("mtls", mtls != nil).Bool("gossip-key", len(cfg.GossipKeys()) > 0).Bool("token", r.token.Get() != "").Msg("node up")

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	served := make(chan error, 1)
	go func() {
		if cfg.API.TLSCert != "" {
			served <- srv.ServeTLS(ln, cfg.API.TLSCert, cfg.API.TLSKey)
		} else {
			served <- srv.Serve(ln)
		}
	}()
	for waiting := true; waiting; {
		select {
		case <-ctx.Done():
			waiting = false
		case err := <-served:
			return fmt.Errorf("the HTTP API stopped: %w", err)
		case <-hup:
			r.reload(ctx)
		}
	}
	return r.shutdown(srv, served, m, &left)
}

// membersFileName is the members file in the data dir: the members a
// node last knew, which it rejoins when it restarts (membership.Config.Memory).
const membersFileName = "members.json"

// membersFile is the members file of a node with a data dir of its own
// (node.data_dir); a node in a temporary one remembers nothing.
func membersFile(cfg *config.Config) string {
	if cfg.Node.DataDir == "" {
		return ""
	}
	return filepath.Join(cfg.Node.DataDir, membersFileName)
}

// addresses are the gossip address (membership.gossip, or bind's port + 1)
// and, with node.advertise, the addresses other nodes dial and gossip to.
func addresses(ctx context.Context, cfg *config.Config) (gossip, advertise, gossipAdvertise string, err error) {
	gossip = cfg.Membership.Gossip
	if gossip == "" {
		if gossip, err = plusOne(cfg.Node.Bind); err != nil {
			return "", "", "", err
		}
	}
	if cfg.Node.Advertise == "" {
		return gossip, "", "", nil
	}
	_, port, _ := net.SplitHostPort(cfg.Node.Bind)
	_, gport, _ := net.SplitHostPort(gossip)
	// SWIM gossips an IP address, not a name: resolve it (in a container,
	// the hostname resolves to the container's address).
	ip := cfg.Node.Advertise
	if net.ParseIP(ip) == nil {
		ips, err := net.DefaultResolver.LookupIP(ctx, "ip4", ip)
		if err != nil || len(ips) == 0 {
			return "", "", "", fmt.Errorf("node.advertise %q does not resolve to an IPv4 address: %v", ip, err)
		}
		ip = ips[0].String()
	}
	return gossip, net.JoinHostPort(cfg.Node.Advertise, port), net.JoinHostPort(ip, gport), nil
}

// The steps of a graceful stop (SIGTERM) are bounded each, so that a node
// stops within about 3 s whatever the rest of the cluster does (a peer
// dead, or stopping too): the API 1 s, the jobs' drain 0.5 s, leaving the
// cluster 1 s, and the node's own stop about 0.5 s (transport/remote: its
// gRPC server's graceful stop is cut at 500 ms). docs/operations.md,
// "Stopping a node".
const (
	// stopAPI is how long requests in flight may take to finish.
	stopAPI = time.Second
	// stopDrain bounds the jobs.DrainRequest: a request to this node's own jobs
	// protocol, which cancels its parts and sends the leader one message;
	// it takes milliseconds unless the protocol is stuck.
	stopDrain = 500 * time.Millisecond
	// stopLeave bounds leaving the cluster: the leave broadcast, and then
	// lingering while it spreads (membership.Leave: five gossip intervals
	// or a probe interval, 1 s with lan; the bound cuts it). A leave not
	// broadcast within it (wan's slow gossip) is found by probing
	// instead: the others see the node failed rather than left.
	stopLeave = time.Second
)

// shutdown stops a node gracefully: the API first (no new jobs), then the
// jobs protocol hands its parts back to the leader, then the node leaves
// the cluster and its protocols stop. Each step is bounded (stopAPI,
// stopDrain, stopLeave).
func (r *running) shutdown(srv *http.Server, served chan error, m *membership.Membership, left *bool) error {
	log := r.log
	start := time.Now()
	log.Info().Msg("stopping: closing the API")
	ctx, cancel := context.WithTimeout(context.Background(), stopAPI)
	defer cancel()
	err := srv.Shutdown(ctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), stopDrain)
	defer dcancel()
	if d, derr := actors.Call(dctx, r.node, jobs.Name, jobs.DrainRequest{}); derr != nil {
		log.Warn().Err(derr).Msg("handing the job parts back did not complete; the leader requeues them when the node is gone")
	} else {
		log.Info().Int("parts", d.HandedBack).Str("leader", string(d.Leader)).Msg("stopping: job parts handed back")
	}
	log.Info().Msg("stopping: leaving the cluster")
	*left = true
	if lerr := m.Leave(stopLeave); lerr != nil {
		// The others may be stopping too (the whole cluster shut down):
		// they learn of this node's departure by probing instead.
		log.Warn().Err(lerr).Msg("leaving the cluster gracefully did not complete")
	}
	err = errors.Join(err, r.node.Stop())
	log.Info().Err(err).Dur("took", time.Since(start)).Msg("stopped")
	return err
}

// warnInsecure says what an open deployment exposes.
func warnInsecure(log zerolog.Logger, cfg *config.Config, gossip string) {
	if isLoopback(cfg.Node.Bind) && isLoopback(gossip) && isLoopback(cfg.API.Listen) {
		return
	}
	if cfg.TLS.CA == "" {
		log.Warn().Msg("no mutual TLS between nodes (tls.ca, tls.cert, tls.key): anyone who reaches node.bind can send this node messages")
	}
	if len(cfg.GossipKeys()) == 0 {
		log.Warn().Msg("gossip is not encrypted (membership.gossip_key): anyone who reaches membership.gossip can join the cluster")
	}
}

// checkAPIExposure refuses an API without a token beyond loopback, unless
// api.insecure (--insecure-api) asks for it; then it warns, at every
// start.
func checkAPIExposure(cfg *config.Config, log zerolog.Logger) error {
	if cfg.APIToken() != "" || isLoopback(cfg.API.Listen) {
		return nil
	}
	if !cfg.API.Insecure {
		return fmt.Errorf("%w: api.listen %q is not a loopback address and the API has no token: anyone who reaches it could run jobs, "+
			"write the store and take locks. Set api.token or api.token_file (TROUPE_API_TOKEN_FILE), listen on 127.0.0.1, "+
			"or start with --insecure-api (api.insecure) to serve it without a token on purpose",
			config.ErrInvalid, cfg.API.Listen)
	}
	log.Warn().Str("listen", cfg.API.Listen).Msg("--insecure-api: the HTTP API is served beyond loopback without a token: " +
		"anyone who reaches api.listen can run jobs, write the store, take locks and change the configuration")
	return nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

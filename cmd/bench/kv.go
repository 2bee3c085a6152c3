package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/kv"
)

type kvBench struct {
	nodes     int
	clients   []int
	duration  time.Duration
	keys      int
	valueSize int
	failovers int
	restarts  int
	dir       string
	profile   string
	memprof   string
	fsync     string
	single    bool
	out       io.Writer
}

func kvCmd() *cobra.Command {
	b := &kvBench{}
	var vs struct {
		on      bool
		rounds  int
		nodeBin string
		h2c     bool
	}
	cmd := &cobra.Command{
		Use:   "kv",
		Short: "The replicated key-value store on loopback: writes/s, latency, cost of replication, leader failover",
		Long: `Starts raft groups (package consensus) on loopback gRPC in this process and
measures puts sent to the leader by concurrent clients, for every number of
clients asked, with fsync on and off, on the replicated group (--nodes) and
on a single node (a 1-node group: the same log and fsync, no replication)
side by side. Then crashes the leader of a replicated group (fsync on,
default timing) --failovers times and measures the time from the crash to
the first write the group accepts again. Then crashes a follower of a
replicated group --restarts times, writes to the group while it is down,
restarts it from its data dir and measures the time from the restart to
the first linearizable read (ReadIndex, as GET /v1/kv) served through it.

fsync OFF rows are for comparison only: without fsync an acknowledged write
can be lost when the machine crashes.

Per row: writes/s, latency, the process's CPU time per write (every node
and client: comparable when other work shares the machine, where writes/s
is not) and writes per raft log entry (the leader batches the writes
queued in one pass of its mailbox into one entry).

The last line: writes_per_s_fsync and writes_per_s_nofsync are the
replicated group's best writes/s (over the client counts), replication_ratio
is replicated / single-node writes/s with fsync at the largest client count,
failover_p99_ms the p99 failover time, restart_ready_p50_ms and
restart_ready_p99_ms the median and p99 restart-to-read time.

What the restart figure measures: cluster.Crash stops the node in this
process with no goodbye, but it is not kill -9. Raft's Stop hook still
runs, failing its pending requests and closing its data dir, which writes
the commit index it held in memory (a killed process leaves the one of its
last term or vote change; raft learns it again from the leader). The node
leaves the in-process loopback directory as it stops and comes back on a
new port, so the others dial it at once, without the backoff (100 ms
doubling to 5 s) with which they probe a dead address that a real restart
on the same port would meet. And the restarted node gets the same raft
configuration, whose Peers name every voter, with their addresses in that
directory: it does not depend on membership, unlike a node restarted by
'troupe node run' without --join.

--vs-etcd compares instead with etcd, side by side: it starts a 3-member
etcd (the etcd binary on PATH; Debian: apt-get install etcd-server) and a
3-node Troupe group ('node run', built from ./cmd/node unless --node-bin
says which binary), both as processes on loopback with their data dirs and
fsync, with the same raft timers (Troupe's default tick: heartbeat 40 ms,
election timeout 200-400 ms; etcd --heartbeat-interval 40
--election-timeout 200, pre-vote on). One generator drives both, etcd and
Troupe in turn, --rounds times: puts and linearizable gets (etcd's default
Get; Troupe's GET /v1/kv, ReadIndex), to the leader, --clients goroutines
(default 1, 16, 64), --value-size bytes (default 64) over --keys keys
(written once before the first round). etcd's client is
go.etcd.io/etcd/client/v3 (gRPC, one connection per 8 goroutines);
Troupe's is its HTTP JSON API over HTTP/1.1 keep-alive connections, one
per goroutine (with --h2c: over HTTP/2 in clear text, one connection per 8
goroutines, as etcd's). Then it kills the leader of each side with SIGKILL --failovers
times (default 5), timing until a put through the other two is accepted,
and restarts it. It prints the medians of the rounds per row and, last,
vs_etcd_put_c64, vs_etcd_get_c64 (Troupe/etcd ops/s at 64 clients) and
vs_etcd_put_c1_p50 (Troupe/etcd median put latency at 1 client).
--fsync, --single, --restarts and the profiles apply to the in-process
benchmark only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b.out = cmd.OutOrStdout()
			if vs.on {
				f := cmd.Flags()
				if !f.Changed("clients") {
					b.clients = []int{1, 16, 64}
				}
				if !f.Changed("value-size") {
					b.valueSize = 64
				}
				if !f.Changed("failovers") {
					b.failovers = 5
				}
				return (&vsEtcd{kvBench: b, rounds: vs.rounds, nodeBin: vs.nodeBin, h2c: vs.h2c}).run(cmd.Context())
			}
			return b.run()
		},
	}
	f := cmd.Flags()
	f.BoolVar(&vs.on, "vs-etcd", false, "compare with a 3-member etcd, side by side, both as processes on loopback (see above)")
	f.IntVar(&vs.rounds, "rounds", 3, "with --vs-etcd: rounds per row, etcd and Troupe in turn")
	f.StringVar(&vs.nodeBin, "node-bin", "", "with --vs-etcd: the Troupe node binary (default: go build ./cmd/node)")
	f.BoolVar(&vs.h2c, "h2c", false, "with --vs-etcd: Troupe's client speaks HTTP/2 in clear text, one connection per 8 clients (default: HTTP/1.1 keep-alive, one connection per client)")
	f.IntVar(&b.nodes, "nodes", 3, "voters of the replicated group")
	f.IntSliceVar(&b.clients, "clients", []int{1, 64}, "concurrent clients, one run each")
	f.DurationVar(&b.duration, "duration", 3*time.Second, "length of each run")
	f.IntVar(&b.keys, "keys", 1000, "distinct keys written")
	f.IntVar(&b.valueSize, "value-size", 128, "bytes per value")
	f.IntVar(&b.failovers, "failovers", 20, "leader crashes measured")
	f.IntVar(&b.restarts, "restarts", 20, "follower crash-and-restarts measured")
	f.StringVar(&b.dir, "dir", "", "data dir root (default: a temporary directory, removed afterwards)")
	f.StringVar(&b.profile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	f.StringVar(&b.memprof, "memprofile", "", "write an allocation profile of the whole run to this file")
	f.StringVar(&b.fsync, "fsync", "both", "rows to run: on, off or both (the last line needs both)")
	f.BoolVar(&b.single, "single", true, "also run each load on a single node (replication_ratio needs it)")
	return cmd
}

type kvRow struct {
	nodes, clients int
	fsync          bool
	writes         int
	errors         int
	elapsed        time.Duration
	cpu            time.Duration // the process's CPU time (every node and client) during the run
	lat            []time.Duration
	entries        uint64 // raft log entries the leader committed during the run (writes are batched into entries)
}

func (r kvRow) rate() float64 { return float64(r.writes) / r.elapsed.Seconds() }

func (b *kvBench) validate() error {
	if b.nodes < 1 || b.nodes > 9 {
		return fmt.Errorf("--nodes %d: use 1 to 9", b.nodes)
	}
	if len(b.clients) == 0 || slices.Min(b.clients) < 1 {
		return fmt.Errorf("--clients %v: give counts of at least 1", b.clients)
	}
	if b.keys < 1 || b.valueSize < 0 || b.valueSize > kv.DefaultConfig().MaxValueSize {
		return fmt.Errorf("--keys must be positive and --value-size in [0, %d]", kv.DefaultConfig().MaxValueSize)
	}
	if b.fsync != "on" && b.fsync != "off" && b.fsync != "both" {
		return fmt.Errorf("--fsync %q: valid: on, off, both", b.fsync)
	}
	if b.duration <= 0 || b.failovers < 0 || b.restarts < 0 {
		return fmt.Errorf("--duration must be positive, --failovers and --restarts not negative")
	}
	return nil
}

func (b *kvBench) run() error {
	if err := b.validate(); err != nil {
		return err
	}
	stopProfile, err := cpuProfile(b.profile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if b.memprof != "" {
		defer func() {
			if f, err := os.Create(b.memprof); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				_ = f.Close()
			}
		}()
	}
	root := b.dir
	if root == "" {
		d, err := os.MkdirTemp("", "troupe-bench-kv-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		root = d
	}
	var rows []kvRow
	run := 0
	for _, fsync := range []bool{true, false} {
		if b.fsync == "on" && !fsync || b.fsync == "off" && fsync {
			continue
		}
		for _, clients := range b.clients {
			for _, nodes := range []int{b.nodes, 1} {
				if nodes == 1 && !b.single && b.nodes != 1 {
					continue
				}
				run++
				row, err := b.load(filepath.Join(root, fmt.Sprintf("run-%d", run)), nodes, clients, fsync)
				if err != nil {
					return err
				}
				fmt.Fprintf(b.out, "# %d nodes, fsync %v, %d clients: %.0f writes/s\n", nodes, onOff(fsync), clients, row.rate())
				rows = append(rows, row)
			}
		}
	}
	var failovers []time.Duration
	if b.failovers > 0 && b.nodes > 1 {
		var err error
		if failovers, err = b.failover(filepath.Join(root, "failover")); err != nil {
			return err
		}
	}
	var restarts []time.Duration
	if b.restarts > 0 && b.nodes > 1 {
		var err error
		if restarts, err = b.restart(filepath.Join(root, "restart")); err != nil {
			return err
		}
	}
	b.report(rows, failovers, restarts)
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "OFF"
}

// group starts a raft group on loopback and returns it with its leader.
func (b *kvBench) group(dir string, nodes int, fsync bool, tweak func(*consensus.Config)) (*cluster.Cluster, *actors.Node, error) {
	c, err := cluster.Local(nodes, cluster.Remote())
	if err != nil {
		return nil, nil, err
	}
	cfg := consensus.DefaultConfig()
	cfg.DataDir, cfg.Peers, cfg.NoSync = dir, c.Names(), !fsync
	cfg.Machines = []consensus.Machine{kv.DefaultMachine()}
	if tweak != nil {
		tweak(&cfg)
	}
	rf, err := consensus.New(cfg)
	if err != nil {
		return nil, nil, errors.Join(err, c.Stop())
	}
	if err := c.Start(rf); err != nil {
		return nil, nil, errors.Join(err, c.Stop())
	}
	lead, err := waitLeader(c, 10*time.Second)
	if err != nil {
		return nil, nil, errors.Join(err, c.Stop())
	}
	return c, c.Node(lead), nil
}

// waitLeader waits until every running node names the same leader.
func waitLeader(c *cluster.Cluster, timeout time.Duration) (actors.NodeName, error) {
	var lead actors.NodeName
	err := waitUntil(timeout, func() bool {
		lead = ""
		for _, n := range c.Nodes() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := actors.Call(ctx, n, consensus.Name, consensus.StatusRequest{})
			cancel()
			if err != nil || st.Leader == "" || (lead != "" && lead != st.Leader) {
				return false
			}
			lead = st.Leader
		}
		return true
	})
	if err != nil {
		return "", fmt.Errorf("no leader agreed on: %w", err)
	}
	return lead, nil
}

// load runs clients that put to the leader for b.duration.
func (b *kvBench) load(dir string, nodes, clients int, fsync bool) (row kvRow, err error) {
	row = kvRow{nodes: nodes, clients: clients, fsync: fsync}
	c, leader, err := b.group(dir, nodes, fsync, nil)
	if err != nil {
		return row, err
	}
	defer func() { err = errors.Join(err, c.Stop()) }()
	kc, err := kv.NewClient(leader)
	if err != nil {
		return row, err
	}
	value := make([]byte, b.valueSize)
	var stop atomic.Bool
	var mu sync.Mutex
	var wg sync.WaitGroup
	commit := func() uint64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := kc.Status(ctx)
		if err != nil {
			return 0
		}
		return st.Commit
	}
	commit0 := commit()
	start, cpu0 := time.Now(), cpuTime()
	for ci := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			writes, errs := 0, 0
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprintf("key-%d", (ci*7919+i)%b.keys)
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := kc.Put(ctx, key, value)
				cancel()
				if err != nil {
					errs++
					continue
				}
				lat = append(lat, time.Since(t0))
				writes++
			}
			mu.Lock()
			row.lat = append(row.lat, lat...)
			row.writes += writes
			row.errors += errs
			mu.Unlock()
		}()
	}
	<-time.After(b.duration)
	stop.Store(true)
	wg.Wait()
	row.elapsed, row.cpu = time.Since(start), cpuTime()-cpu0
	if c := commit(); c > commit0 {
		row.entries = c - commit0
	}
	return row, nil
}

// failover crashes the leader of a replicated group b.failovers times and
// measures the time until a write is accepted again.
func (b *kvBench) failover(dir string) ([]time.Duration, error) {
	c, leader, err := b.group(dir, b.nodes, true, nil)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	var out []time.Duration
	for trial := range b.failovers {
		victim := leader.Name()
		var writer *actors.Node
		for _, n := range c.Nodes() {
			if n.Name() != victim {
				writer = n
				break
			}
		}
		kc, err := kv.NewClient(writer)
		if err != nil {
			return nil, err
		}
		crashed := make(chan error, 1)
		t0 := time.Now()
		go func() { crashed <- c.Crash(victim) }()
		var took time.Duration
		for i := 0; ; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			_, err := kc.Put(ctx, "failover", fmt.Appendf(nil, "%d-%d", trial, i))
			cancel()
			if err == nil {
				took = time.Since(t0)
				break
			}
			if time.Since(t0) > 30*time.Second {
				return nil, fmt.Errorf("failover %d: no write accepted 30s after crashing %s: %w", trial+1, victim, err)
			}
			if !errors.Is(err, consensus.ErrTimeout) {
				<-time.After(2 * time.Millisecond) // ErrNoLeader comes back at once: do not spin
			}
		}
		out = append(out, took)
		fmt.Fprintf(b.out, "# failover %d/%d: leader %s crashed, writes accepted again after %d ms\n", trial+1, b.failovers, victim, took.Milliseconds())
		if err := <-crashed; err != nil {
			return nil, err
		}
		if _, err := c.Restart(victim); err != nil {
			return nil, err
		}
		lead, err := waitLeader(c, 10*time.Second)
		if err != nil {
			return nil, err
		}
		leader = c.Node(lead)
	}
	return out, nil
}

// restartWrites is how many puts the group takes while the follower is
// down in each restart round: the restarted node has entries to catch up.
const restartWrites = 100

// restart crashes a follower of a replicated group b.restarts times,
// writes to the group while it is down, restarts it from its data dir and
// measures the time from the restart to the first linearizable read
// served through it (ReadIndex, as GET /v1/kv). The read must see the last
// write made while it was down.
func (b *kvBench) restart(dir string) ([]time.Duration, error) {
	c, leader, err := b.group(dir, b.nodes, true, nil)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	var out []time.Duration
	for trial := range b.restarts {
		// The followers in turn, so that every one is restarted.
		var followers []actors.NodeName
		for _, n := range c.Nodes() {
			if n.Name() != leader.Name() {
				followers = append(followers, n.Name())
			}
		}
		victim := followers[trial%len(followers)]
		if err := c.Crash(victim); err != nil {
			return nil, err
		}
		kc, err := kv.NewClient(leader)
		if err != nil {
			return nil, err
		}
		var want []byte
		for i := range restartWrites {
			want = fmt.Appendf(nil, "%d-%d", trial, i)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := kc.Put(ctx, fmt.Sprintf("restart-%d", i%10), want)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("restart %d: writing while %s is down: %w", trial+1, victim, err)
			}
		}
		lastKey := fmt.Sprintf("restart-%d", (restartWrites-1)%10)
		t0 := time.Now()
		n, err := c.Restart(victim)
		if err != nil {
			return nil, fmt.Errorf("restart %d: restarting %s: %w", trial+1, victim, err)
		}
		started := time.Since(t0) // the node and its raft protocol are up
		rkv, err := kv.NewClient(n)
		if err != nil {
			return nil, err
		}
		var took time.Duration
		attempts, timeouts := 0, 0
		var noLeader time.Duration // when the node last answered that it knows no leader
		for {
			attempts++
			// A client's patience per read; a node that knows no leader yet
			// answers at once, and is asked again 2 ms later.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			got, found, err := rkv.Get(ctx, lastKey)
			cancel()
			if err == nil {
				took = time.Since(t0)
				if !found || string(got) != string(want) {
					return nil, fmt.Errorf("restart %d: %s read %s = %q (found %v) after restarting; the last write was %q: not linearizable",
						trial+1, victim, lastKey, got, found, want)
				}
				break
			}
			if time.Since(t0) > 30*time.Second {
				return nil, fmt.Errorf("restart %d: no read served by %s 30s after restarting it: %w", trial+1, victim, err)
			}
			switch {
			case errors.Is(err, consensus.ErrTimeout):
				timeouts++
			default:
				if errors.Is(err, consensus.ErrNoLeader) {
					noLeader = time.Since(t0)
				}
				<-time.After(2 * time.Millisecond) // ErrNoLeader comes back at once: do not spin
			}
		}
		out = append(out, took)
		fmt.Fprintf(b.out, "# restart %d/%d: follower %s crashed, %d writes, restarted, served a read after %d ms (up after %d ms, no leader known at %d ms, %d read attempts, %d timed out)\n",
			trial+1, b.restarts, victim, restartWrites, took.Milliseconds(), started.Milliseconds(), noLeader.Milliseconds(), attempts, timeouts)
		lead, err := waitLeader(c, 10*time.Second)
		if err != nil {
			return nil, err
		}
		leader = c.Node(lead)
	}
	return out, nil
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

func (b *kvBench) report(rows []kvRow, failovers, restarts []time.Duration) {
	single := map[[2]int]float64{} // (fsync, clients) → single-node writes/s
	key := func(fsync bool, clients int) [2]int {
		f := 0
		if fsync {
			f = 1
		}
		return [2]int{f, clients}
	}
	for _, r := range rows {
		if r.nodes == 1 {
			single[key(r.fsync, r.clients)] = r.rate()
		}
	}
	tw := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "nodes\tfsync\tclients\twrites\terrors\twrites/s\tp50 ms\tp99 ms\tcpu µs/write\twrites/entry\tvs 1 node\t")
	bestFsync, bestNoFsync, ratio := 0.0, 0.0, 0.0
	maxClients := slices.Max(b.clients)
	for _, r := range rows {
		vs := "-"
		if r.nodes != 1 || b.nodes == 1 {
			if s := single[key(r.fsync, r.clients)]; s > 0 {
				vs = fmt.Sprintf("%.2f", r.rate()/s)
				if r.fsync && r.clients == maxClients {
					ratio = r.rate() / s
				}
			}
			if r.fsync {
				bestFsync = max(bestFsync, r.rate())
			} else {
				bestNoFsync = max(bestNoFsync, r.rate())
			}
		}
		cpu := "-"
		if r.writes > 0 {
			cpu = fmt.Sprintf("%.1f", float64(r.cpu.Microseconds())/float64(r.writes))
		}
		batch := "-"
		if r.entries > 0 {
			batch = fmt.Sprintf("%.1f", float64(r.writes)/float64(r.entries))
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n", r.nodes, onOff(r.fsync), r.clients, r.writes, r.errors,
			r.rate(), ms(quantile(r.lat, 0.5)), ms(quantile(r.lat, 0.99)), cpu, batch, vs)
	}
	_ = tw.Flush()
	if len(failovers) > 0 {
		fmt.Fprintf(b.out, "failover (%d nodes, %d leader crashes): p50 %s ms, p99 %s ms, max %s ms\n", b.nodes, len(failovers),
			ms(quantile(failovers, 0.5)), ms(quantile(failovers, 0.99)), ms(quantile(failovers, 1)))
	}
	if len(restarts) > 0 {
		fmt.Fprintf(b.out, "restart (%d nodes, %d follower crashes): ready for a read p50 %s ms, p99 %s ms, max %s ms\n", b.nodes, len(restarts),
			ms(quantile(restarts, 0.5)), ms(quantile(restarts, 0.99)), ms(quantile(restarts, 1)))
	}
	fmt.Fprintf(b.out, "writes_per_s_fsync=%.0f writes_per_s_nofsync=%.0f replication_ratio=%.2f failover_p99_ms=%.0f restart_ready_p50_ms=%.0f restart_ready_p99_ms=%.0f\n",
		bestFsync, bestNoFsync, ratio, float64(quantile(failovers, 0.99).Microseconds())/1000,
		float64(quantile(restarts, 0.5).Microseconds())/1000, float64(quantile(restarts, 0.99).Microseconds())/1000)
}

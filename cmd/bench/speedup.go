package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/api"
	examplejobs "github.com/troupe-dev/troupe/examples/jobs"
	"github.com/troupe-dev/troupe/jobs"
)

// evenJob is the speedup's default workload: every part runs the same
// number of loop iterations, so that parts cost the same and a job of a
// multiple of N parts divides evenly over N nodes (the primes of cpu.star
// cost more in the higher ranges). Its result does not depend on the
// split.
const evenJob = `
def split(input, n):
    return [{"seed": i, "loops": input["loops"] // n} for i in range(n)]

def run(part):
    x = part["seed"]
    for _ in range(part["loops"]):
        x = (x * 1103515245 + 12345) % 2147483648
    return 1

def merge(results):
    done = 0
    for r in results:
        done += r
    return {"parts": len(results), "done": done}
`

// efficiencyTarget is the speedup the node design requires of N nodes,
// per node: the bench fails when a median speedup is below it times N.
const efficiencyTarget = 0.7

// errBelowTarget: some N's median speedup is below efficiencyTarget·N.
var errBelowTarget = errors.New("speedup below the target")

// speedupCluster is a running cluster of the speedup bench: node i's API
// (1-based; node-1 is the contact), and how to remove it.
type speedupCluster struct {
	clients []*api.Client
	stop    func()
}

// launcher starts a cluster of n nodes, each running one part at a time,
// whose node-n is to lead.
type launcher func(ctx context.Context, n int) (*speedupCluster, error)

type speedupBench struct {
	image, cpus, network string
	maxNodes, parts      int
	repeats              int
	workload             string
	limit                int
	loops                int
	basePort             int
	timeout              time.Duration
	out                  io.Writer
	launch               launcher // nil: docker containers
	// ideal, when set, is the job's time in this process on one goroutine
	// without a CPU limit (measured by run when nil).
	ideal *time.Duration
}

func speedupCmd() *cobra.Command {
	b := &speedupBench{}
	cmd := &cobra.Command{
		Use:   "speedup",
		Short: "A CPU-bound job on 1..N nodes in containers with the same CPU limit each, repeated",
		Long: `For N = 1 .. --nodes, --repeats times each, starts N containers of --image
(see Dockerfile: build the static binary, then 'docker build -t
troupe-node .') on a network of their own, each limited to --cpus CPUs
(and GOMAXPROCS=1, so the Go runtime does not spread a fraction of a CPU
over two threads) and running one part at a time, waits until all N are
members and follow one leader, submits the job to node-1's API and times
it from submission to its end at the contact. Then removes the containers.

The same cluster shape at every N, the baseline included: node-1 is the
contact, node-N the leader. The bench waits for the job with one long
poll (GET /v1/jobs/{id}?wait=), so that no status request runs inside a
node's CPU quota while the job does.

The workload (--workload): "even" (the default) runs --parts parts of the
same cost (a loop of --loops iterations in all, split evenly), with
--parts a multiple of every N (0: the least such, 60 for 5 nodes), so
that each node of N gets as many parts; "primes" is
examples/jobs/cpu.star (primes below --limit), whose higher ranges cost
more.

Prints per N the median time of the repeats and their spread (min–max),
the speedup (median T1 / median TN), the efficiency (speedup/N) and how
close the median came to the ideal: the job's time in this process on one
goroutine without a CPU limit, over N·cpus. The last line is exactly
  min_efficiency=<x> median_efficiency=<y>
the lowest and the median efficiency over N ≥ 2 (1 with --nodes 1). The
exit status is 1 when some N's speedup is below 0.7·N (the node design's
requirement), after that line.

Needs the docker CLI and a daemon that enforces --cpus (cgroups); where it
does not, every container gets the whole machine and the figures measure
the machine's cores, not the protocol.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b.out = cmd.OutOrStdout()
			err := b.run(cmd.Context())
			if errors.Is(err, errBelowTarget) {
				// Said on the lines before the last; nothing may follow
				// the last line.
				os.Exit(1)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&b.image, "image", "troupe-node", "the node image")
	f.StringVar(&b.cpus, "cpus", "0.35", "CPU limit of each container (docker run --cpus)")
	f.StringVar(&b.network, "network", "troupe-bench", "docker network to create for the run")
	f.IntVar(&b.maxNodes, "nodes", 5, "largest cluster (1 to 9)")
	f.IntVar(&b.repeats, "repeats", 3, "runs per N (at least 3)")
	f.StringVar(&b.workload, "workload", "even", "even (parts of equal cost) or primes (examples/jobs/cpu.star)")
	f.IntVar(&b.parts, "parts", 0, "parts of the job (0: even: the least multiple of 1..--nodes; primes: 40)")
	f.IntVar(&b.loops, "loops", 6_000_000, "even: loop iterations of the whole job")
	f.IntVar(&b.limit, "limit", 1000000, "primes: the job counts primes below this")
	f.IntVar(&b.basePort, "port", 19180, "host port of node-1's API (node-i: port+i-1), on 127.0.0.1")
	f.DurationVar(&b.timeout, "timeout", 5*time.Minute, "give up on a run after this long")
	return cmd
}

func docker(ctx context.Context, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args[:min(len(args), 2)], " "), err, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// lcmUpTo is the least common multiple of 1..n.
func lcmUpTo(n int) int {
	l := 1
	for i := 2; i <= n; i++ {
		a, b := l, i
		for b != 0 {
			a, b = b, a%b
		}
		l = l / a * i
	}
	return l
}

// job is the script and input of the workload, with its parts.
func (b *speedupBench) job() (script string, input []byte, parts int, err error) {
	switch b.workload {
	case "even":
		parts = b.parts
		if parts == 0 {
			parts = lcmUpTo(b.maxNodes)
		}
		for n := 1; n <= b.maxNodes; n++ {
			if parts%n != 0 {
				return "", nil, 0, fmt.Errorf("--parts %d does not divide evenly over %d nodes; use a multiple of %d (every N up to --nodes), or 0", parts, n, lcmUpTo(b.maxNodes))
			}
		}
		if b.loops < parts {
			return "", nil, 0, fmt.Errorf("--loops %d: give at least one loop per part (%d parts)", b.loops, parts)
		}
		input, _ = json.Marshal(map[string]int{"loops": b.loops})
		return evenJob, input, parts, nil
	case "primes":
		parts = cmpOr(b.parts, 40)
		input, _ = json.Marshal(map[string]int{"limit": b.limit})
		return examplejobs.CPU, input, parts, nil
	}
	return "", nil, 0, fmt.Errorf("--workload %q: use even or primes", b.workload)
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// speedupRow is one N's runs and what they make.
type speedupRow struct {
	n                int
	secs             []float64 // by repeat
	median, lo, hi   float64
	speedup, eff, of float64 // of: ideal time over the median
	ideal            float64
	belowTarget      bool
}

// speedupSummary computes, from each N's run times (secs[i] for N=i+1),
// the rows and the last line's figures: speedup is median T1 / median TN,
// efficiency speedup/N; min and median efficiency are over N ≥ 2 (1 with
// one N); below lists the N whose speedup is under efficiencyTarget·N.
func speedupSummary(secs [][]float64, ideal time.Duration, cpus float64) (rows []speedupRow, minEff, medEff float64, below []int) {
	var effs []float64
	for i, s := range secs {
		n := i + 1
		r := speedupRow{n: n, secs: s, median: medianOf(s), lo: slices.Min(s), hi: slices.Max(s)}
		r.speedup = medianOf(secs[0]) / r.median
		r.eff = r.speedup / float64(n)
		r.ideal = ideal.Seconds() / (float64(n) * cpus)
		r.of = r.ideal / r.median
		if n > 1 {
			effs = append(effs, r.eff)
			if r.speedup < efficiencyTarget*float64(n) {
				r.belowTarget = true
				below = append(below, n)
			}
		}
		rows = append(rows, r)
	}
	if len(effs) == 0 {
		return rows, 1, 1, nil
	}
	return rows, slices.Min(effs), medianOf(effs), below
}

func (b *speedupBench) run(ctx context.Context) error {
	if b.maxNodes < 1 || b.maxNodes > 9 {
		return fmt.Errorf("--nodes %d: use 1 to 9", b.maxNodes)
	}
	if b.repeats < 3 || b.repeats > 50 {
		return fmt.Errorf("--repeats %d: use 3 to 50 (a median and a spread need three runs)", b.repeats)
	}
	cpus, err := strconv.ParseFloat(b.cpus, 64)
	if err != nil || cpus <= 0 {
		return fmt.Errorf("--cpus %q: want a positive number", b.cpus)
	}
	script, input, parts, err := b.job()
	if err != nil {
		return err
	}
	if b.launch == nil {
		if _, err := docker(ctx, "image", "inspect", b.image); err != nil {
			return fmt.Errorf("no image %q: build it (see Dockerfile): %w", b.image, err)
		}
		if _, err := docker(ctx, "network", "create", b.network); err != nil {
			return err
		}
		defer docker(context.Background(), "network", "rm", b.network)
		b.launch = b.containers
	}
	// The same job in this process, one goroutine at full speed: the ideal
	// time on N nodes is this over N·cpus.
	local := time.Duration(0)
	if b.ideal != nil {
		local = *b.ideal
	} else {
		rt, err := jobs.Starlark(jobs.StarlarkConfig{})
		if err != nil {
			return err
		}
		start := time.Now()
		if _, err := jobs.RunLocal(ctx, rt, []byte(script), input, parts); err != nil {
			return err
		}
		local = time.Since(start)
	}
	fmt.Fprintf(b.out, "# workload %s, %d parts; in this process, one goroutine, no CPU limit: %.2f s\n", b.workload, parts, local.Seconds())
	secs := make([][]float64, b.maxNodes)
	var result string
	// Interleaved: repeat r runs N = 1..max before repeat r+1, so that a
	// change in the machine's load spreads over every N.
	for r := range b.repeats {
		for n := 1; n <= b.maxNodes; n++ {
			took, res, err := b.once(ctx, n, script, input, parts)
			if err != nil {
				return fmt.Errorf("%d nodes, repeat %d: %w", n, r+1, err)
			}
			if result == "" {
				result = res
			} else if res != result {
				return fmt.Errorf("%d nodes gave %s; 1 node gave %s", n, res, result)
			}
			secs[n-1] = append(secs[n-1], took.Seconds())
			fmt.Fprintf(b.out, "# repeat %d, %d nodes: %.2f s, result %s\n", r+1, n, took.Seconds(), res)
		}
	}
	rows, minEff, medEff, below := speedupSummary(secs, local, cpus)
	tw := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tmedian s\tmin s\tmax s\tspread %\tspeedup\tefficiency\tideal s\tof ideal\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%.2f\t%.2f\t%.2f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", r.n, r.median, r.lo, r.hi,
			100*(r.hi-r.lo)/r.median, r.speedup, r.eff, r.ideal, r.of)
	}
	_ = tw.Flush()
	fmt.Fprintf(b.out, "# cpus=%s workload=%s parts=%d repeats=%d nodes=%d\n", b.cpus, b.workload, parts, b.repeats, b.maxNodes)
	for _, r := range rows {
		if r.belowTarget {
			fmt.Fprintf(b.out, "# below the target: %d nodes, speedup %.2f < %.1f·%d = %.2f\n", r.n, r.speedup, efficiencyTarget, r.n, efficiencyTarget*float64(r.n))
		}
	}
	fmt.Fprintf(b.out, "min_efficiency=%.2f median_efficiency=%.2f\n", minEff, medEff)
	if len(below) > 0 {
		return fmt.Errorf("%w: %v nodes", errBelowTarget, below)
	}
	return nil
}

// benchNodeArgs are the `node run` arguments of a bench container. The API
// listens on the container's 0.0.0.0 without a token, which node run
// refuses unless --insecure-api: the port is published on the host's
// loopback only (-p 127.0.0.1:…), and the containers live only for one
// run.
func benchNodeArgs(name string, join bool) []string {
	args := []string{"run", "--name", name, "--bind", "0.0.0.0:7000", "--advertise", name,
		"--http", "0.0.0.0:8080", "--insecure-api",
		"--data-dir", "/data", "--preset", "local", "--slots", "1", "--log-level", "warn"}
	if join {
		args = append(args, "--join", "node-1:7001")
	}
	return args
}

// containers starts n containers, each under the CPU limit.
func (b *speedupBench) containers(ctx context.Context, n int) (*speedupCluster, error) {
	var names []string
	c := &speedupCluster{stop: func() {
		if len(names) > 0 {
			_, _ = docker(context.Background(), append([]string{"rm", "-f"}, names...)...)
		}
	}}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("node-%d", i)
		args := []string{"run", "-d", "--name", "troupe-bench-" + name, "--hostname", name, "--network", b.network,
			"--cpus", b.cpus, "-e", "GOMAXPROCS=1", "-p", fmt.Sprintf("127.0.0.1:%d:8080", b.basePort+i-1), b.image}
		args = append(args, benchNodeArgs(name, i > 1)...)
		if _, err := docker(ctx, args...); err != nil {
			c.stop()
			return nil, err
		}
		names = append(names, "troupe-bench-"+name)
		c.clients = append(c.clients, api.NewClient(fmt.Sprintf("127.0.0.1:%d", b.basePort+i-1)))
	}
	return c, nil
}

// once runs the job on a fresh cluster of n nodes and returns its time and
// result.
func (b *speedupBench) once(ctx context.Context, n int, script string, input []byte, parts int) (time.Duration, string, error) {
	c, err := b.launch(ctx, n)
	if err != nil {
		return 0, "", err
	}
	defer c.stop()
	node := func(i int) *api.Client {
		cl := *c.clients[i-1]
		h := *cl.HTTP
		h.Timeout = 5 * time.Second
		cl.HTTP = &h
		return &cl
	}
	// Every node sees n members alive and follows node-n.
	err = waitUntil(time.Minute, func() bool {
		for i := 1; i <= n; i++ {
			var ms []struct{ Name, State string }
			var l struct{ Leader string }
			if get(ctx, node(i), "/v1/members", &ms) != nil || get(ctx, node(i), "/v1/leader", &l) != nil {
				return false
			}
			alive := 0
			for _, m := range ms {
				if m.State == "alive" {
					alive++
				}
			}
			if alive != n || l.Leader != fmt.Sprintf("node-%d", n) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return 0, "", fmt.Errorf("the %d nodes did not form a cluster with one leader: %w", n, err)
	}
	var sub jobs.Submitted
	if err := post(ctx, node(1), "/v1/jobs", map[string]any{"script": script, "input": json.RawMessage(input), "parts": parts}, &sub); err != nil {
		return 0, "", err
	}
	// One long poll at a time, not a request every few milliseconds: the
	// contact answers when the job ends.
	waiter := *c.clients[0]
	h := *waiter.HTTP
	h.Timeout = jobs.MaxStatusWait + 10*time.Second
	waiter.HTTP = &h
	var st jobs.Status
	deadline := time.Now().Add(b.timeout)
	for {
		wait := min(time.Until(deadline), jobs.MaxStatusWait).Round(time.Millisecond)
		if wait <= 0 {
			return 0, "", fmt.Errorf("job %s: %d of %d parts after %v", sub.ID, st.PartsDone, st.PartsTotal, b.timeout)
		}
		if err := get(ctx, &waiter, "/v1/jobs/"+sub.ID+"?wait="+wait.String(), &st); err != nil {
			return 0, "", err
		}
		if st.State.Ended() {
			break
		}
	}
	if st.State != jobs.Succeeded {
		return 0, "", fmt.Errorf("job %s %s: %s", st.ID, st.State, st.Error)
	}
	var res bytes.Buffer
	_ = json.Compact(&res, st.Result)
	return st.Ended.Sub(st.Submitted), res.String(), nil
}

func get(ctx context.Context, c *api.Client, path string, out any) error {
	_, err := c.Do(ctx, http.MethodGet, path, nil, out)
	return err
}

func post(ctx context.Context, c *api.Client, path string, body, out any) error {
	_, err := c.Do(ctx, http.MethodPost, path, body, out)
	return err
}

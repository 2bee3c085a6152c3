package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/troupe-dev/troupe/api"
	examplejobs "github.com/troupe-dev/troupe/examples/jobs"
	"github.com/troupe-dev/troupe/jobs"
)

type speedupBench struct {
	image, cpus, network string
	maxNodes, parts      int
	limit                int
	basePort             int
	timeout              time.Duration
	out                  io.Writer
}

func speedupCmd() *cobra.Command {
	b := &speedupBench{}
	cmd := &cobra.Command{
		Use:   "speedup",
		Short: "The CPU-bound sample job on 1..N nodes in containers with the same CPU limit each",
		Long: `For N = 1 .. --nodes, starts N containers of --image (see Dockerfile: build
the static binary, then 'docker build -t troupe-node .') on a network of
their own, each limited to --cpus CPUs (and GOMAXPROCS=1, so the Go
runtime does not spread a fraction of a CPU over two threads) and running
one part at a time,
waits until all N are members and follow one leader, submits
examples/jobs/cpu.star (primes below --limit, in --parts parts) to node-1's
API and times it from submission to its end at the contact. Then removes
the containers. Prints N, seconds, speedup (T1/TN) and efficiency
(speedup/N), and how close each run came to the ideal: the job's time in
this process on one goroutine without a CPU limit, over N·cpus. The last
line has min_efficiency, the lowest efficiency for N ≥ 2.

Needs the docker CLI and a daemon that enforces --cpus (cgroups); where it
does not, every container gets the whole machine and the figures measure
the machine's cores, not the protocol.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b.out = cmd.OutOrStdout()
			return b.run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&b.image, "image", "troupe-node", "the node image")
	f.StringVar(&b.cpus, "cpus", "0.35", "CPU limit of each container (docker run --cpus)")
	f.StringVar(&b.network, "network", "troupe-bench", "docker network to create for the run")
	f.IntVar(&b.maxNodes, "nodes", 5, "largest cluster (1 to 9)")
	f.IntVar(&b.parts, "parts", 40, "parts of the job")
	f.IntVar(&b.limit, "limit", 1000000, "the job counts primes below this")
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

func (b *speedupBench) run(ctx context.Context) error {
	if b.maxNodes < 1 || b.maxNodes > 9 {
		return fmt.Errorf("--nodes %d: use 1 to 9", b.maxNodes)
	}
	if _, err := docker(ctx, "image", "inspect", b.image); err != nil {
		return fmt.Errorf("no image %q: build it (see Dockerfile): %w", b.image, err)
	}
	if _, err := docker(ctx, "network", "create", b.network); err != nil {
		return err
	}
	defer docker(context.Background(), "network", "rm", b.network)
	input, _ := json.Marshal(map[string]int{"limit": b.limit})
	cpus, err := strconv.ParseFloat(b.cpus, 64)
	if err != nil || cpus <= 0 {
		return fmt.Errorf("--cpus %q: want a positive number", b.cpus)
	}
	// The same job in this process, one goroutine at full speed: the ideal
	// time on N nodes is this over N·cpus.
	rt, err := jobs.Starlark(jobs.StarlarkConfig{})
	if err != nil {
		return err
	}
	start := time.Now()
	if _, err := jobs.RunLocal(ctx, rt, []byte(examplejobs.CPU), input, b.parts); err != nil {
		return err
	}
	local := time.Since(start)
	fmt.Fprintf(b.out, "# in this process, one goroutine, no CPU limit: %.2f s\n", local.Seconds())
	var secsN []float64
	var result string
	tw := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tseconds\tspeedup\tefficiency\tideal s\tof ideal\t")
	minEff, minIdeal := 1.0, 1.0
	for n := 1; n <= b.maxNodes; n++ {
		took, res, err := b.once(ctx, n, input)
		if err != nil {
			return fmt.Errorf("%d nodes: %w", n, err)
		}
		if result == "" {
			result = res
		} else if res != result {
			return fmt.Errorf("%d nodes gave %s; 1 node gave %s", n, res, result)
		}
		secsN = append(secsN, took.Seconds())
		speedup := secsN[0] / took.Seconds()
		eff := speedup / float64(n)
		ideal := local.Seconds() / (float64(n) * cpus)
		if n > 1 {
			minEff = min(minEff, eff)
		}
		minIdeal = min(minIdeal, ideal/took.Seconds())
		fmt.Fprintf(b.out, "# %d nodes: %.2f s, result %s\n", n, took.Seconds(), res)
		fmt.Fprintf(tw, "%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", n, took.Seconds(), speedup, eff, ideal, ideal/took.Seconds())
	}
	_ = tw.Flush()
	fmt.Fprintf(b.out, "cpus=%s parts=%d limit=%d nodes=%d min_of_ideal=%.2f min_efficiency=%.2f\n", b.cpus, b.parts, b.limit, b.maxNodes, minIdeal, minEff)
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

// once runs the job on n fresh containers and returns its time and result.
func (b *speedupBench) once(ctx context.Context, n int, input []byte) (time.Duration, string, error) {
	var names []string
	defer func() {
		if len(names) > 0 {
			_, _ = docker(context.Background(), append([]string{"rm", "-f"}, names...)...)
		}
	}()
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("node-%d", i)
		args := []string{"run", "-d", "--name", "troupe-bench-" + name, "--hostname", name, "--network", b.network,
			"--cpus", b.cpus, "-e", "GOMAXPROCS=1", "-p", fmt.Sprintf("127.0.0.1:%d:8080", b.basePort+i-1), b.image}
		args = append(args, benchNodeArgs(name, i > 1)...)
		if _, err := docker(ctx, args...); err != nil {
			return 0, "", err
		}
		names = append(names, "troupe-bench-"+name)
	}
	node := func(i int) *api.Client {
		c := api.NewClient(fmt.Sprintf("127.0.0.1:%d", b.basePort+i-1))
		c.HTTP.Timeout = 5 * time.Second
		return c
	}
	// Every node sees n members alive and follows node-n.
	err := waitUntil(time.Minute, func() bool {
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
		return 0, "", fmt.Errorf("the %d containers did not form a cluster with one leader: %w", n, err)
	}
	var sub jobs.Submitted
	if err := post(ctx, node(1), "/v1/jobs", map[string]any{"script": examplejobs.CPU, "input": json.RawMessage(input), "parts": b.parts}, &sub); err != nil {
		return 0, "", err
	}
	var st jobs.Status
	err = waitUntil(b.timeout, func() bool {
		return get(ctx, node(1), "/v1/jobs/"+sub.ID, &st) == nil && st.State.Ended()
	})
	if err != nil {
		return 0, "", fmt.Errorf("job %s: %d of %d parts after %v", sub.ID, st.PartsDone, st.PartsTotal, b.timeout)
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

package main

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/config"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/jobs/jobstest"
)

// TestBenchNodesPassNodeRunsAPICheck: the arguments a bench container runs
// `node run` with load as a configuration, and its API, served beyond
// loopback without a token, says so with api.insecure (--insecure-api), as
// node run demands.
func TestBenchNodesPassNodeRunsAPICheck(t *testing.T) {
	keyOf := map[string]string{}
	for _, k := range config.Keys() {
		if k.Flag != "" {
			keyOf[k.Flag] = k.Name
		}
	}
	for _, join := range []bool{false, true} {
		args := benchNodeArgs("node-2", join)
		if args[0] != "run" {
			t.Fatalf("args %v do not start with run", args)
		}
		flags := map[string]string{}
		for i := 1; i < len(args); i++ {
			flag, ok := strings.CutPrefix(args[i], "--")
			if !ok {
				t.Fatalf("%q in %v is no flag", args[i], args)
			}
			key, ok := keyOf[flag]
			if !ok {
				t.Fatalf("--%s sets no configuration key", flag)
			}
			value := "true" // a bool flag
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				value = args[i+1]
				i++
			}
			flags[key] = value
		}
		cfg, err := config.Load(config.Sources{Flags: flags})
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		host, _, err := net.SplitHostPort(cfg.API.Listen)
		if err != nil {
			t.Fatal(err)
		}
		if ip := net.ParseIP(host); cfg.APIToken() == "" && (ip == nil || !ip.IsLoopback()) && !cfg.API.Insecure {
			t.Errorf("%v: the API listens on %s without a token and without --insecure-api; node run refuses to start", args, cfg.API.Listen)
		}
	}
}

// The figures of the table and of the last line, from run times: medians,
// speedup against the median one-node time, efficiency, and the N whose
// speedup is below 0.7·N.
func TestSpeedupSummary(t *testing.T) {
	secs := [][]float64{{10, 12, 11}, {5, 6, 5.5}, {6, 5, 7}}
	rows, minEff, medEff, below := speedupSummary(secs, 2*time.Second, 0.5)
	r2, r3 := rows[1], rows[2]
	if r2.median != 5.5 || r2.lo != 5 || r2.hi != 6 || r2.speedup != 2 || r2.eff != 1 || r2.belowTarget {
		t.Errorf("N=2: %+v; want median 5.5 (5–6), speedup 2, efficiency 1", r2)
	}
	if math.Abs(r3.speedup-11.0/6) > 1e-9 || !r3.belowTarget || r2.ideal != 2 || math.Abs(r2.of-2/5.5) > 1e-9 {
		t.Errorf("N=3: %+v; want speedup 11/6 = 1.83, below 0.7·3 = 2.1", r3)
	}
	if !slices.Equal(below, []int{3}) || math.Abs(minEff-11.0/18) > 1e-9 || math.Abs(medEff-(1+11.0/18)/2) > 1e-9 {
		t.Errorf("below %v, min %v, median %v; want [3], 0.61, 0.81", below, minEff, medEff)
	}
	// 2.1 is exactly 0.7·3: not below.
	_, _, _, below = speedupSummary([][]float64{{21, 21, 21}, {10.5, 10.5, 10.5}, {10, 10, 10}}, time.Second, 1)
	if len(below) != 0 {
		t.Errorf("a speedup of exactly 0.7·N counted below: %v", below)
	}
	if _, minEff, medEff, below := speedupSummary([][]float64{{3, 4, 5}}, time.Second, 1); minEff != 1 || medEff != 1 || below != nil {
		t.Errorf("one N: min %v, median %v, below %v; want 1, 1, none", minEff, medEff, below)
	}
}

// The even workload divides over every N; other part counts are refused
// with what would do.
func TestSpeedupWorkload(t *testing.T) {
	if lcmUpTo(5) != 60 || lcmUpTo(1) != 1 || lcmUpTo(9) != 2520 {
		t.Errorf("lcm: %d %d %d", lcmUpTo(5), lcmUpTo(1), lcmUpTo(9))
	}
	b := &speedupBench{maxNodes: 5, workload: "even", loops: 6000}
	if _, _, parts, err := b.job(); err != nil || parts != 60 {
		t.Errorf("even, 5 nodes: %d parts, %v; want 60", parts, err)
	}
	b.parts = 40
	if _, _, _, err := b.job(); err == nil || !strings.Contains(err.Error(), "multiple of 60") {
		t.Errorf("40 parts over 1..5 nodes: %v; want a refusal naming 60", err)
	}
	b.workload = "fast"
	if _, _, _, err := b.job(); err == nil || !strings.Contains(err.Error(), "even or primes") {
		t.Errorf("workload fast: %v", err)
	}
	b = &speedupBench{maxNodes: 2, repeats: 2, cpus: "1", workload: "even", loops: 100}
	if err := b.run(context.Background()); err == nil || !strings.Contains(err.Error(), "--repeats 2") {
		t.Errorf("2 repeats: %v; want a refusal", err)
	}
}

// A tiny run on in-process nodes (the sim network, the API on loopback
// HTTP): three repeats of 1 and 2 nodes, the job's result the same each
// time, the table, and the last line exactly as the contract says. The
// exit follows the figures: errBelowTarget exactly when the output says
// some N is below 0.7·N. (No timing is asserted: two nodes in one process
// share its cores.)
func TestSpeedupTinyRun(t *testing.T) {
	var out strings.Builder
	ideal := time.Second
	b := &speedupBench{maxNodes: 2, repeats: 3, cpus: "1", workload: "even", loops: 2000, timeout: time.Minute,
		out: &out, ideal: &ideal, launch: inProcess(t)}
	err := b.run(context.Background())
	if err != nil && !errors.Is(err, errBelowTarget) {
		t.Fatalf("%v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	if !regexp.MustCompile(`^min_efficiency=\d+\.\d\d median_efficiency=\d+\.\d\d$`).MatchString(last) {
		t.Errorf("last line %q; want exactly min_efficiency=<x> median_efficiency=<y>", last)
	}
	if runs := strings.Count(out.String(), `result {"done":2,"parts":2}`); runs != 6 {
		t.Errorf("%d runs with the whole result, want 6 (3 repeats of 1 and 2 nodes):\n%s", runs, out.String())
	}
	said := strings.Contains(out.String(), "# below the target: 2 nodes")
	if said != errors.Is(err, errBelowTarget) {
		t.Errorf("the output says below the target: %v; the bench returned %v\n%s", said, err, out.String())
	}
}

// inProcess launches clusters on the sim network in this process, each
// node's API served on loopback.
func inProcess(t *testing.T) launcher {
	return func(_ context.Context, n int) (*speedupCluster, error) {
		cfg := jobs.DefaultConfig()
		cfg.Slots = 1
		c := jobstest.NewCluster(t, n, cfg)
		sc := &speedupCluster{}
		var srvs []*httptest.Server
		for _, node := range c.Nodes() {
			srv := httptest.NewServer(api.New(node, api.Config{}))
			srvs = append(srvs, srv)
			sc.clients = append(sc.clients, api.NewClient(srv.URL))
		}
		sc.stop = func() {
			for _, s := range srvs {
				s.Close()
			}
			_ = c.Stop()
		}
		return sc, nil
	}
}

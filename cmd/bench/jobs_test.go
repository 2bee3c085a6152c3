package main

import (
	"context"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
)

// Jain's index: 1 for an even spread, 1/n when one node ran everything.
func TestJainFairness(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{{[]float64{5, 5, 5, 5}, 1}, {[]float64{20, 0, 0, 0}, 0.25}, {[]float64{3, 1}, 0.8}, {nil, 0}} {
		if got := jain(c.xs); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("jain(%v) = %v, want %v", c.xs, got, c.want)
		}
	}
	if m := medianOf([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median of 3 1 2 10: %v, want 2.5", m)
	}
}

// A tiny `bench jobs` on loopback: both series run, the drained leader
// runs no part (the bench fails if it does), and the last line carries
// every figure.
func TestJobsBenchTinyRun(t *testing.T) {
	actortest.SkipRemoteUnderRace(t) // protoactor's remote sets grpc's logger per node
	var out strings.Builder
	b := &jobsBench{nodes: 3, parts: 30, trials: 1, slots: 1, timeout: time.Minute, out: &out}
	if err := b.run(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	re := regexp.MustCompile(`^nodes=3 parts=30 trials=1 msgs_per_part=[0-9.]+ part_overhead_us=[0-9.]+ leader_share=[0-9.]+ remote_part_overhead_us=[0-9.]+ remote_msgs_per_part=[0-9.]+ remote_fairness=[0-9.]+$`)
	if !re.MatchString(last) {
		t.Errorf("last line %q", last)
	}
	if !strings.Contains(out.String(), "leader node-3): node-1=") || !strings.Contains(out.String(), "node-3=0\n") {
		t.Errorf("no parts per node, or the drained leader ran parts:\n%s", out.String())
	}
}

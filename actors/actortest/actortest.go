package actortest

import (
	"fmt"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/cluster"
)

// NewCluster starts n in-process nodes (on the sim network unless
// cluster.Remote is given) and stops them when the test ends.
func NewCluster(t testing.TB, n int, opts ...cluster.Option) *cluster.Cluster {
	t.Helper()
	c, err := cluster.Local(n, opts...)
	if err != nil {
		t.Fatalf("starting a %d-node cluster: %v", n, err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping the cluster: %v", err)
		}
	})
	return c
}

// Eventually waits until cond holds, checking it every few milliseconds, and
// fails the test if it does not hold within timeout. what describes the
// condition for the failure message.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := WaitFor(timeout, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// WaitFor waits until cond holds or timeout passes.
func WaitFor(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %v", timeout)
		}
		<-tick.C
	}
	return nil
}

// Receive waits for a value on ch, failing the test after timeout.
func Receive[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("%s: nothing received within %v", what, timeout)
		panic("unreachable")
	}
}

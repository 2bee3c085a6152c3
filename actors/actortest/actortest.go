package actortest

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

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

// NoGoroutinesOf waits up to a second for every goroutine that runs code
// of the packages under prefix (other than the caller's own goroutine and
// tests) to exit, and reports those that remain.
func NoGoroutinesOf(prefix string) error {
	var stuck []string
	err := WaitFor(time.Second, func() bool {
		stuck = stuck[:0]
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for i, g := range strings.Split(string(buf), "\n\n") {
			if i == 0 || strings.Contains(g, "testing.tRunner") || strings.Contains(g, "testing.(*T).Run") {
				continue // this goroutine, and tests
			}
			if strings.Contains(g, prefix) {
				stuck = append(stuck, g)
			}
		}
		return len(stuck) == 0
	})
	if err != nil {
		return fmt.Errorf("%d goroutines of %s still run:\n%s", len(stuck), prefix, strings.Join(stuck, "\n\n"))
	}
	return nil
}

// SkipRemoteUnderRace skips a test that starts several protoactor remotes
// in one process when it runs under -race: protoactor-go's remote rewrites
// gRPC's global logger on every start and its shutdown is not race-clean
// (docs/architecture.md, known limits). Such tests still run without -race.
func SkipRemoteUnderRace(t testing.TB) {
	t.Helper()
	if RaceEnabled {
		t.Skip("protoactor-go remote is not race-clean (gRPC global logger rewritten on every Start); this test runs without -race")
	}
}

// FreePorts returns n loopback TCP ports that were free a moment ago, for
// tests that start nodes on fixed ports (another process may take one
// meanwhile: rare, and the node then fails to start, saying so).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

package actortest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
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

// FreePorts returns n loopback ports, free for TCP and UDP, for tests that
// start nodes on fixed ports. A port that is merely free a moment ago is not
// enough: the kernel hands the same numbers to every outgoing connection and
// every ":0" listener of the machine, and `go test ./...` runs packages side
// by side (a node failed to start with "address already in use" that way).
// So the ports come from below the kernel's ephemeral range, and each is
// reserved across processes by an advisory lock on a file in the temporary
// directory, held until the test ends; the lock dies with the process.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	lo, hi := reservedRange()
	span := hi - lo
	start := rand.IntN(span)
	var ports []int
	for i := 0; i < span && len(ports) < n; i++ {
		port := lo + (start+i)%span
		release, ok := reservePort(port)
		if !ok {
			continue
		}
		if !portFree(port) {
			release()
			continue
		}
		t.Cleanup(release)
		ports = append(ports, port)
	}
	if len(ports) < n {
		t.Fatalf("actortest: only %d of %d free ports in %d-%d", len(ports), n, lo, hi)
	}
	return ports
}

// reservedRange is where FreePorts looks: the ports below the kernel's
// ephemeral range (32768-60999 on Linux), down to 20000.
func reservedRange() (lo, hi int) {
	lo, hi = 20000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var first, last int
		if _, err := fmt.Sscan(string(b), &first, &last); err == nil && first > lo+1000 {
			hi = first
		}
	}
	return lo, hi
}

// portFree reports whether both TCP and UDP can bind 127.0.0.1:port now
// (membership listens on both).
func portFree(port int) bool {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	_ = pc.Close()
	return true
}

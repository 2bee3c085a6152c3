package actortest

import (
	"testing"
	"testing/synctest"
	"time"
)

// Linger is how long, in virtual time, [Virtual] lets a test's goroutines
// run on after its cleanups, so that those a library leaves behind after
// its Shutdown (memberlist's probe in flight, protoactor's log throttle)
// finish their timers and exit.
const Linger = time.Minute

// Virtual runs f in a testing/synctest bubble: on virtual time, which
// stands still while any goroutine of the test runs and jumps to the next
// timer when all of them wait. Waits on conditions ([Eventually],
// [WaitFor], [Receive]), timeouts, SWIM's probes and the sim network's
// latencies cost no wall time, and a goroutine starved of CPU cannot miss
// a deadline: virtual time does not pass while it is runnable.
//
// Everything the test touches must be created inside f: the cluster
// ([clustertest.NewCluster] is fine; its cleanup runs inside the bubble),
// channels, timers. It suits clusters on the sim network (transport/sim),
// with or without SWIM membership; not real sockets (transport/remote,
// HTTP servers, child processes), whose waits are not durably blocking,
// so time would not move. The bubble fails the test with a panic if a
// goroutine it started is still blocked Linger after the test's cleanups:
// a leak.
//
// [clustertest.NewCluster]: https://pkg.go.dev/github.com/troupe-dev/troupe/cluster/clustertest#NewCluster
func Virtual(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		// Registered first, so it runs last, after the cluster's Stop.
		t.Cleanup(func() {
			time.Sleep(Linger)
			synctest.Wait()
		})
		f(t)
	})
}

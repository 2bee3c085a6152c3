package actortest

import "go.uber.org/goleak"

// LeakOptions are the goleak options every package's TestMain passes to
// goleak.VerifyTestMain:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(m, actortest.LeakOptions()...) }
//
// They ignore only goroutines of libraries that the library gives no way
// to stop or wait for, each named below with its owner and why. A
// goroutine of Troupe's that outlives the tests is a leak and fails the
// package; so does any other library goroutine (a gRPC connection nobody
// closed, a memberlist nobody shut down).
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		// protoactor-go's log throttles (actor/throttler.go NewThrottle,
		// NewThrottleWithLogger): the first dead letter, or gossip
		// warning, of a burst starts a goroutine that waits one throttle
		// interval (1 s by default) on a ticker, logs how many lines it
		// swallowed and exits. Nothing stops it, not ActorSystem.Shutdown;
		// a test that ends within a second of a dead letter leaves it
		// behind for a moment.
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/cluster.NewGossipActor.NewThrottleWithLogger.func2.1"),
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/cluster.(*Gossiper).StartGossiping.NewThrottle.func3.1"),
		// hashicorp/memberlist's probe (state.go probeNode): a probe in
		// flight when Memberlist.Shutdown returns goes on waiting for its
		// ack until the probe timeout (then the indirect probes' and the
		// TCP fallback's deadline); Shutdown neither cancels nor waits for
		// it.
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
	}
}

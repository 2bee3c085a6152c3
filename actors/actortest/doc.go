// Package actortest is the test kit of Troupe protocols: whole clusters in
// one call, with cleanup, and waits on conditions with deadlines instead of
// sleeps.
//
// # Usage
//
//	func TestMyProtocol(t *testing.T) {
//		c := actortest.NewCluster(t, 5, cluster.Sim(sim.Config{Seed: 1}))
//		if err := c.Start(newMyProtocol); err != nil { t.Fatal(err) }
//		actortest.Eventually(t, 5*time.Second, "every node delivered", func() bool { ... })
//	}
//
// # Concurrency
//
// Conditions passed to Eventually run on the test's goroutine; read shared
// state through atomics, Node.Stats, or an observer.
//
// # Testing
//
// The kit is used by the tests of actors, examples and every protocol.
package actortest

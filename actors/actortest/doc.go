// Package actortest is the low-level test kit of Troupe: waits on
// conditions with deadlines instead of sleeps ([Eventually], [WaitFor],
// [Receive]), virtual time ([Virtual], on testing/synctest), a
// [ManualClock], an [Impostor] that sends as another protocol, [FreePorts],
// and the goleak options every package's TestMain uses ([LeakOptions]). It
// imports only package actors, so any package's tests may use it; whole
// clusters are in the cluster kit, cluster/clustertest.
//
// # Usage
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(m, actortest.LeakOptions()...) }
//
//	func TestMyProtocol(t *testing.T) {
//		actortest.Virtual(t, func(t *testing.T) {
//			c := clustertest.NewCluster(t, 5, cluster.Sim(sim.Config{Seed: 1}))
//			if err := c.Start(newMyProtocol); err != nil { t.Fatal(err) }
//			actortest.Eventually(t, 5*time.Second, "every node delivered", func() bool { ... })
//		})
//	}
//
// # Concurrency
//
// Conditions passed to Eventually run on the test's goroutine; read shared
// state through atomics, Node.Stats, or an observer. Inside [Virtual] they
// run on virtual time: a poll every 2 ms of it, at no wall-clock cost.
//
// # Testing
//
// The kit is used by the tests of every package.
package actortest

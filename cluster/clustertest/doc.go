// Package clustertest is the cluster test kit of Troupe protocols: whole
// clusters in one call, stopped when the test ends, and SWIM timings for
// the sim network. It sits on package cluster; the waits, the manual clock,
// the impostor and the leak options it is used with are in the low-level
// kit, actors/actortest, which imports only actors.
//
// # Usage
//
//	func TestMyProtocol(t *testing.T) {
//		actortest.Virtual(t, func(t *testing.T) {
//			c := clustertest.NewCluster(t, 5, cluster.Sim(sim.Config{Seed: 1}),
//				cluster.Membership(clustertest.SimMembership()))
//			if err := c.Start(newMyProtocol); err != nil { t.Fatal(err) }
//			actortest.Eventually(t, 5*time.Second, "every node delivered", func() bool { ... })
//		})
//	}
//
// # Concurrency
//
// NewCluster registers the cluster's Stop with t.Cleanup; inside
// actortest.Virtual that cleanup runs in the bubble, as it must.
//
// # Testing
//
// The kit is used by the tests of actors (package actors_test: an external
// test package may import a package that imports actors), examples and
// every protocol.
package clustertest

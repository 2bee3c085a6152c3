// Package cluster starts a whole cluster of Troupe nodes in this process,
// in one call, on the simulated network or on loopback remote: for tests,
// examples and the demo.
//
// # Usage
//
//	c, err := cluster.Local(5, cluster.Sim(sim.Config{Seed: 1, Faults: sim.Faults{Loss: 0.3}}))
//	defer c.Stop()
//	err = c.Start(func() actors.Protocol { return &MyProtocol{} })
//	c.Hub.Partition([]string{"node-1", "node-2"})   // sim only
//	c.Crash("node-3"); c.Restart("node-3")
//
// On the sim network, [Cluster.Hub] injects faults and counts messages and
// bytes; on loopback ([Remote]) every node listens on its own port and the
// nodes find each other through one shared directory. [RemoteTLS] adds
// mutual TLS: the cluster's CA issues every node a certificate naming it,
// used on the node port and on SWIM's streams.
//
// # Concurrency
//
// A Cluster's methods are safe for concurrent use.
//
// # Testing
//
// Package cluster/clustertest wraps Local for tests, with cleanup; the
// condition waits are in actors/actortest. cluster_test.go runs a cluster over mutual TLS.
package cluster

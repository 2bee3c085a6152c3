// Package consensustest holds what tests of raft groups share: a group
// started in one call, and the porcupine model that checks a history of
// key-value operations for linearizability.
//
// [Start] starts an N-node cluster (the simulated network, or loopback
// with Options.Loopback) and the raft protocol on it, hosting the given
// state machines, with its data dirs in a t.TempDir and the fast timing of
// [Config]; [StartOn] starts the group on a cluster the test built. The
// [Group] waits for a leader, crashes and restarts nodes (which restore
// from their data dirs), and stops everything when the test ends. The
// tests of packages consensus, kv, mutex, commit and examples/ledger run on
// it.
//
// [Model] is a linearizable register per key; the consensus package's
// tests and the simulation's raft-kv scenario check their histories
// against it.
//
// # Usage
//
//	g := consensustest.Start(t, consensustest.Options{Nodes: 3, Machines: []consensus.Machine{kv.DefaultMachine()}})
//	lead := g.Leader(5 * time.Second)
//	kc, _ := kv.NewClient(g.Node(lead))
//	g.Crash("node-2"); g.Restart("node-2")
//
//	in := consensustest.Input{Op: kv.OpPut, Key: "k", Value: "v"}
//	op := porcupine.Operation{ClientId: c, Input: in, Call: t0, Output: consensustest.Output{}, Return: t1}
//	// an operation whose outcome was lost (a timeout, a crash) may have
//	// taken effect or not: set in.Unknown and Return to math.MaxInt64
//	ok := porcupine.CheckOperations(consensustest.Model, history)
package consensustest

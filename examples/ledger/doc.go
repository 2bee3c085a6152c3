// Package ledger replicates a user-defined structure on the raft group of
// package consensus: a bank ledger whose transfers never overdraw, in a
// few dozen lines on the public state-machine interface
// (consensus.StateMachine).
//
// Apply is the whole business rule, run on every node in log order: a
// transfer that would overdraw its source is refused there, the same way on
// every replica, and its requester is answered ErrInsufficientFunds. Two
// transfers racing for the same money are ordered by the log, so at most
// one of them wins — no lock, no read-then-write. A balance is read after
// a ReadIndex: it reflects every transfer acknowledged before the read.
//
// # Usage
//
//	cfg := consensus.DefaultConfig()
//	cfg.Machines = []consensus.Machine{ledger.Machine(), kv.DefaultMachine()} // side by side
//	f, _ := consensus.New(cfg)
//	node.Start(f)
//	ledger.Move(ctx, node, "", "alice", 100)      // a deposit
//	ledger.Move(ctx, node, "alice", "bob", 30)    // ErrInsufficientFunds if alice holds less
//	balance, _ := ledger.Read(ctx, node, "bob")
//
// From a protocol, send the raft protocol a Transfer or a Balance with
// actors.Request.
//
// # Concurrency
//
// The state machine runs on the raft protocol's handlers, one at a time;
// Move and Read are safe for concurrent use.
//
// # Testing
//
// The test runs a 3-node group on the simulated network
// (consensustest.Start) beside the key-value store, races transfers from
// every node, restarts a node from its snapshot and checks that no account
// ever went below zero and that money was neither made nor lost.
package ledger

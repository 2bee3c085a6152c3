// Package kv is the replicated key-value store: a state machine on the
// raft group of package consensus ([Machine], hosted under the name "kv"),
// built on consensus's public interface only.
//
// Writes (put, delete, compare-and-set) are commands: proposed to the
// group's log, applied on every node in log order, answered once applied.
// Gets are linearizable: served from the local replica after a ReadIndex
// (the gets that reach a node between two Readys share one). [Request] is
// the typed request (actors.Call or actors.Request to consensus.Name),
// [Client] the blocking client, [HTTPHandler] the JSON API of
// /v1/kv/{key} (with the group's /v1/raft operator API), [BrowseRequest]
// a look at the local replica's keys for operators.
//
// # Usage
//
//	cfg := consensus.DefaultConfig()
//	cfg.DataDir, cfg.Peers = dir, peers
//	cfg.Machines = []consensus.Machine{kv.DefaultMachine()}
//	f, _ := consensus.New(cfg)
//	node.Start(f)                                    // on every node of the group
//	kc, _ := kv.NewClient(node)
//	idx, err := kc.Put(ctx, "k", []byte("v"))        // any node
//	v, found, err := kc.Get(ctx, "k")                // linearizable
//	swapped, cur, found, err := kc.CAS(ctx, "k", []byte("v"), []byte("w"))
//
// Errors: [ErrInvalidKey] and [ErrValueTooLarge] refuse a request before
// it is proposed; the group's (consensus.ErrNotApplied, ErrTimeout, ...)
// say whether a write happened (docs/consensus.md).
//
// # Concurrency
//
// The store runs on the raft protocol's handlers; [Client] is safe for
// concurrent use.
//
// # Testing
//
// The tests run groups with consensustest on the simulated network; the
// linearizability checks of package consensus run on this store.
package kv

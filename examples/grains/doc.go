// Package grains is a protoactor virtual actor (a grain) hosted on Troupe
// nodes: a counter, one per identity in the whole cluster, activated on
// the member that owns its identity when it is first called, and
// activated again on another member when that member fails. Its count
// lives in memory only, so after a move it starts again from zero
// (re-created, not recovered: a grain that must keep its state writes it
// to a replicated store, such as the raft group's key-value store).
//
// Example (example_test.go) runs three nodes in one process on loopback,
// each hosting the kind, calls a counter from a node that does not host
// it, crashes the node that does, and calls it again: it answers from
// another node, counting from zero. The package grains of the module
// (github.com/troupe-dev/troupe/grains) starts the actor cluster on each
// node; docs/membership.md, "The actor cluster", explains it.
package grains

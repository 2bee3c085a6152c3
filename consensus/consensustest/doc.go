// Package consensustest holds what tests of the replicated key-value store
// share: the porcupine model that checks a history of its operations for
// linearizability. The consensus package's own tests and the simulation's
// raft-kv scenario both check their histories against it.
//
// # Usage
//
//	in := consensustest.Input{Op: kv.OpPut, Key: "k", Value: "v"}
//	op := porcupine.Operation{ClientId: c, Input: in, Call: t0, Output: consensustest.Output{}, Return: t1}
//	// an operation whose outcome was lost (a timeout, a crash) may have
//	// taken effect or not: set in.Unknown and Return to math.MaxInt64
//	ok := porcupine.CheckOperations(consensustest.Model, history)
package consensustest

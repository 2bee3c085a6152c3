// Package fencing is a store guarded by fencing tokens, the other half of
// a lease lock (mutex.Leases): a holder whose lease ran out — paused,
// partitioned, or crashed and restarted — may still believe it holds the
// lock, so the store itself refuses a write whose token is older than one
// it has already seen for that key.
//
// # Usage
//
//	lease, _ := leases.Acquire(ctx, "orders", 10*time.Second, "worker-3")
//	err := store.Write("orders", value, lease.Token) // ErrStaleToken once a later holder wrote
//
// # Concurrency
//
// A Store is safe for concurrent use.
//
// # Testing
//
// The example and the tests of package mutex run a raft group on the
// simulated network, let a holder crash, and check that its write is
// refused after the next holder's.
package fencing

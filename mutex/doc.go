// Package mutex is distributed mutual exclusion, two ways: the
// Ricart–Agrawala algorithm as a Troupe protocol, and lease locks with
// fencing tokens on the raft group of package consensus.
//
// [New] starts the classic algorithm (Ricart and Agrawala, 1981):
// Lamport timestamps order the requests, a member defers its reply to a
// request that comes after its own, and a node enters when every other
// member has replied — 2(N−1) messages per entry among N members, sent
// with reliable delivery. Membership changes are followed: a member that
// fails or leaves is no longer waited for, one that joins is asked too.
// It needs no leader and no disk, but every member takes part in every
// entry, and it is only as safe as the failure detector (a member declared
// failed while alive can be in the section while another enters).
//
// [LockMachine] is the lease locks' replicated state machine, hosted on the
// raft group of package consensus (built on its public interface only,
// beside the key-value store), and [Leases] its client: a lock is granted
// by a committed log entry, for a TTL, with a fencing token that is the
// entry's log index — greater than every token granted before. Expiry goes
// through the log too: every replica counts a lease down on its own clock
// from its apply, and the leader proposes the expiry (consensus.Ticker). A holder that crashes loses the lock when its lease
// runs out; a store that checks tokens (examples/fencing) refuses a late
// write from it. [HTTPHandler] serves the locks over HTTP and `node lock`
// uses it.
//
// # Usage
//
// Ricart–Agrawala, on every member:
//
//	cfg := mutex.DefaultConfig()
//	cfg.Members = []string{"node-1", "node-2", "node-3"}
//	f, err := mutex.New(cfg) // cfg.Validate's error, if any
//	node.Start(f)
//	cl, _ := mutex.NewClient(node, "")
//	g, err := cl.Lock(ctx)   // blocks until this node holds the section
//	...
//	err = cl.Unlock(ctx, g)
//
// From another protocol, [Enter] and [Release] are requests
// (actors.Request; the reply to an Enter is the [Grant]); give an Enter a
// [Ticket] and Tell a [Withdraw] with it if you may stop waiting.
// Subscribe to [Entered] and [Exited]; ask for [Status] with a
// [StatusRequest]. With Config.Members empty the members are the live
// nodes of the membership view (membership.Attach first).
//
// Lease locks, on a node whose raft protocol hosts them
// (consensus.Config.Machines = append(..., mutex.LockMachine())):
//
//	leases, _ := mutex.NewLeases(node)
//	lease, err := leases.Acquire(ctx, "orders", 10*time.Second, "worker-3")
//	store.Write(key, value, lease.Token) // the store refuses stale tokens
//	lease, err = leases.Refresh(ctx, lease, 0)
//	err = leases.Release(ctx, "orders", lease.Token)
//	http.Handle("/v1/locks/", mutex.HTTPHandler(leases))
//
// # Concurrency
//
// The protocol's state is touched only by its handlers. [Client] and
// [Leases] are safe for concurrent use. An Enter waits in the protocol, not
// on its goroutine: requests of one node are served in their order.
//
// # Testing
//
// The tests run clusters on the sim network: a checker that sees every
// entry and exit in one order asserts at most one holder at a time over
// many seeded runs with loss, duplication, reordering and delay (more with
// -mutex.seeds=N), and that every entry is granted; the messages per entry
// are counted on the hub. Lease tests crash holders (on a follower and on
// the leader) and check expiry, tokens and fencing. docs/mutex.md has the
// design, the decisions and the measurements.
package mutex

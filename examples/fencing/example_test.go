package fencing_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/examples/fencing"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/mutex"
)

// A holder stalls past its two-second lease; the next holder gets a
// greater token, and the store refuses the first holder's late write.
func Example() {
	dir, err := os.MkdirTemp("", "fencing-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	c, err := cluster.Local(3)
	if err != nil {
		panic(err)
	}
	defer c.Stop()
	cfg := consensus.DefaultConfig()
	cfg.Machines = []consensus.Machine{kv.DefaultMachine(), mutex.LockMachine()}
	cfg.DataDir, cfg.Peers, cfg.NoSync = dir, c.Names(), true
	rf, err := consensus.New(cfg)
	if err != nil {
		panic(err)
	}
	if err := c.Start(rf); err != nil {
		panic(err)
	}
	first, _ := mutex.NewLeases(c.Node("node-1"))
	second, _ := mutex.NewLeases(c.Node("node-2"))
	ctx := context.Background()
	store := fencing.NewStore()

	var old, cur mutex.Lease
	_ = actortest.WaitFor(10*time.Second, func() bool { // until the group has a leader
		old, err = first.Acquire(ctx, "orders", 2*time.Second, "first")
		return err == nil
	})
	fmt.Println("first writes:", store.Write("orders", "v1", old.Token))
	_ = actortest.WaitFor(10*time.Second, func() bool { // through a leader change, should one happen
		_, err = second.Acquire(ctx, "orders", 10*time.Second, "second")
		return err == nil || errors.Is(err, mutex.ErrLockHeld)
	})
	fmt.Println("second is refused while the lease runs:", errors.Is(err, mutex.ErrLockHeld))

	// The first holder stalls: no refresh, no release. Its lease expires.
	_ = actortest.WaitFor(10*time.Second, func() bool {
		cur, err = second.Acquire(ctx, "orders", 10*time.Second, "second")
		return err == nil
	})
	fmt.Println("second's token is greater:", cur.Token > old.Token)
	fmt.Println("second writes:", store.Write("orders", "v2", cur.Token))
	err = store.Write("orders", "v1, late", old.Token)
	fmt.Println("first's late write is stale:", errors.Is(err, fencing.ErrStaleToken))
	v, _ := store.Read("orders")
	fmt.Println("orders =", v)
	// Output:
	// first writes: <nil>
	// second is refused while the lease runs: true
	// second's token is greater: true
	// second writes: <nil>
	// first's late write is stale: true
	// orders = v2
}

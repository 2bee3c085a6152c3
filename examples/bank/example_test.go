package bank_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/commit"
	"github.com/troupe-dev/troupe/examples/bank"
)

// Three nodes, one account each; node-3 coordinates two transfers between
// the others' ledgers. The second would overdraw bob's account: node-2
// votes no and neither ledger changes.
func Example() {
	dir, err := os.MkdirTemp("", "bank")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	c, err := cluster.Local(3)
	if err != nil {
		panic(err)
	}
	defer c.Stop()
	b, err := bank.New(bank.Config{DataDir: dir, Accounts: map[actors.NodeName]map[string]int64{
		"node-1": {"alice": 100},
		"node-2": {"bob": 50},
		"node-3": {"carol": 0},
	}})
	if err != nil {
		panic(err)
	}
	cfg := commit.DefaultConfig()
	cfg.DataDir, cfg.Resource = dir, b.Resource
	// Generous timeouts: each vote waits for an fsync, and a busy CI
	// disk can take longer than the defaults allow; a timeout would
	// abort the first transfer, which is correct but not this example.
	cfg.VoteTimeout, cfg.PrepareTimeout, cfg.AbandonAfter = 10*time.Second, 5*time.Second, 30*time.Second
	cf, err := commit.New(cfg)
	if err != nil {
		panic(err)
	}
	if err := c.Start(cf); err != nil {
		panic(err)
	}
	alice, bob := bank.Account{Node: "node-1", Name: "alice"}, bank.Account{Node: "node-2", Name: "bob"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, amount := range []int64{30, 500} {
		tx, err := bank.Transfer(bob, alice, amount)
		if err != nil {
			panic(err)
		}
		out, err := commit.Do(ctx, c.Node("node-3"), tx)
		if err != nil {
			panic(err)
		}
		if out.Committed {
			fmt.Printf("bob → alice %d: committed\n", amount)
		} else {
			fmt.Printf("bob → alice %d: aborted (%s)\n", amount, out.Reason)
		}
	}
	// Do returns once the outcome is decided; wait until every ledger
	// has applied it.
	err = actortest.WaitFor(10*time.Second, func() bool {
		for _, n := range c.Nodes() {
			st, err := actors.Call(ctx, n, commit.Name, commit.StatsRequest{})
			if err != nil || st.Coordinating+st.InDoubt+st.Preparing > 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		panic(err)
	}
	for _, n := range b.Nodes() {
		bal, err := b.Balances(n)
		if err != nil {
			panic(err)
		}
		fmt.Println(n, bal)
	}
	total, err := b.Total()
	if err != nil {
		panic(err)
	}
	fmt.Println("total", total)
	// Output:
	// bob → alice 30: committed
	// bob → alice 500: aborted (node-2 voted no: bank: insufficient funds: node-2/bob has 20 available, the transfer takes 500)
	// node-1 map[alice:130]
	// node-2 map[bob:20]
	// node-3 map[carol:0]
	// total 150
}

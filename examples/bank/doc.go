// Package bank is an example of atomic commit: each node keeps a ledger
// of accounts, and a transfer between accounts on different nodes is a
// two-phase commit transaction (package commit), so the bank's total
// never changes, whatever crashes.
//
// # Usage
//
//	b, _ := bank.New(bank.Config{DataDir: dir, Accounts: map[actors.NodeName]map[string]int64{
//		"node-1": {"alice": 100}, "node-2": {"bob": 50},
//	}})
//	cfg := commit.DefaultConfig()
//	cfg.DataDir, cfg.Resource = dir, b.Resource   // a node's Ledger is its commit.Resource
//	f, _ := commit.New(cfg)
//	c.Start(f)
//	tx, _ := bank.Transfer(bank.Account{Node: "node-1", Name: "alice"}, bank.Account{Node: "node-2", Name: "bob"}, 30)
//	out, _ := commit.Do(ctx, c.Node("node-3"), tx)   // any node coordinates
//	total, _ := b.Total()
//
// A [Ledger] is a bbolt file, DataDir/<node>/ledger.db, with the
// balances, the prepared transactions and a journal of how each prepared
// transaction ended. Prepare holds the debits (a balance minus its held
// debits never goes below zero) and never waits: a transfer that would
// overdraw votes no. Commit and Abort are idempotent.
//
// # Concurrency
//
// A [Bank] is safe for concurrent use. A Ledger's commit.Resource methods
// are called by the commit protocol, one at a time; Bank's readers
// (Balances, Total, Journal, Pending) may run beside them.
//
// # Testing
//
// TestConcurrentTransfersUnderFaults runs concurrent transfers through
// random coordinators on a lossy, duplicating, reordering network while
// nodes crash and restart, in both commit modes (-bank.seeds=N for more
// runs), and checks the total, the balances, atomicity and what each
// client was told. The Example runs in the normal test suite.
package bank

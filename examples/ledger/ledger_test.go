package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/examples/ledger"
	"github.com/troupe-dev/troupe/kv"
)

func TestTransfersNeverOverdraw(t *testing.T) { actortest.Virtual(t, testTransfersNeverOverdraw) }

func testTransfersNeverOverdraw(t *testing.T) {
	g := consensustest.Start(t, consensustest.Options{Nodes: 3, Seed: 3,
		Machines: []consensus.Machine{kv.DefaultMachine(), ledger.Machine()}, // side by side in one log
		Config:   func(c *consensus.Config) { c.SnapshotEntries, c.CatchUpEntries = 5, 1 }})
	g.Leader(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := ledger.Move(ctx, g.Node("node-1"), "", "alice", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Move(ctx, g.Node("node-2"), "alice", "alice", 1); !errors.Is(err, ledger.ErrBadTransfer) {
		t.Fatalf("a transfer to itself: %v; want ErrBadTransfer", err)
	}
	// Eight transfers of 30 race from every node for alice's 100: three win.
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, refused := 0, 0
	for i := range 8 {
		node := g.Node(g.Cluster.Names()[i%3])
		wg.Go(func() {
			_, err := ledger.Move(ctx, node, "alice", fmt.Sprint("payee-", i), 30)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, ledger.ErrInsufficientFunds):
				refused++
			default:
				t.Errorf("transfer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if won != 3 || refused != 5 {
		t.Fatalf("%d transfers won, %d refused; want 3 and 5 (100 covers three of 30)", won, refused)
	}
	// The key-value store beside it is untouched by the ledger, and works.
	kc, err := kv.NewClient(g.Node("node-3"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Put(ctx, "note", []byte("ledger beside kv")); err != nil {
		t.Fatal(err)
	}
	// node-2 restarts from its snapshot and log, and agrees.
	g.Crash("node-2")
	if _, err := ledger.Move(ctx, g.Node("node-1"), "", "bob", 5); err != nil {
		t.Fatal(err)
	}
	g.Restart("node-2")
	g.Leader(5 * time.Second)
	for _, name := range g.Cluster.Names() {
		total := int64(0)
		for _, acct := range []string{"alice", "bob", "payee-0", "payee-1", "payee-2", "payee-3", "payee-4", "payee-5", "payee-6", "payee-7"} {
			b, err := ledger.Read(ctx, g.Node(name), acct)
			if err != nil || b < 0 {
				t.Fatalf("%s: balance of %s: %d, %v", name, acct, b, err)
			}
			total += b
		}
		if total != 105 {
			t.Errorf("%s: the accounts hold %d in all; want the 105 deposited", name, total)
		}
		if b, _ := ledger.Read(ctx, g.Node(name), "alice"); b != 10 {
			t.Errorf("%s: alice holds %d; want 10", name, b)
		}
	}
	if st, err := g.Status("node-2"); err != nil || st.SnapshotIndex == 0 {
		t.Errorf("node-2 made or got no snapshot (%+v, %v); the test wants restore exercised", st, err)
	}
}

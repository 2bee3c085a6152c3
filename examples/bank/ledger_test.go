package bank_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/examples/bank"
)

func TestLedgerHoldsDebitsAndEndsOnce(t *testing.T) {
	b, err := bank.New(bank.Config{DataDir: t.TempDir(), NoSync: true, Accounts: map[actors.NodeName]map[string]int64{"n": {"x": 100, "y": 0}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.Resource("n")
	if err != nil {
		t.Fatal(err)
	}
	debit := func(amount int64) []byte {
		tx, err := bank.Move(map[bank.Account]int64{{Node: "n", Name: "x"}: -amount, {Node: "n", Name: "y"}: amount})
		if err != nil {
			t.Fatal(err)
		}
		return tx.Parts[0].Op
	}
	if err := r.Prepare("t1", debit(60)); err != nil {
		t.Fatal(err)
	}
	if err := r.Prepare("t1", debit(60)); err != nil {
		t.Errorf("preparing t1 again: %v, want nil", err)
	}
	// 60 of 100 is held: another 60 would overdraw.
	if err := r.Prepare("t2", debit(60)); !errors.Is(err, bank.ErrInsufficientFunds) {
		t.Errorf("a second debit of 60 while 60 is held: %v, want ErrInsufficientFunds", err)
	}
	if err := r.Prepare("t3", debit(40)); err != nil {
		t.Fatal(err)
	}
	if p, _ := r.Prepared(); len(p) != 2 {
		t.Errorf("prepared %v, want t1 and t3", p)
	}
	for _, step := range []func() error{
		func() error { return r.Commit("t1") }, func() error { return r.Commit("t1") },
		func() error { return r.Abort("t3") }, func() error { return r.Commit("t3") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Prepare("t1", debit(1)); !errors.Is(err, bank.ErrEnded) {
		t.Errorf("preparing t1 after its commit: %v, want ErrEnded", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	bal, err := b.Balances("n")
	if err != nil || bal["x"] != 40 || bal["y"] != 60 {
		t.Errorf("balances %v, %v; want x 40, y 60", bal, err)
	}
	j, _ := b.Journal("n")
	if !j["t1"] || j["t3"] || len(j) != 2 {
		t.Errorf("journal %v, want t1 committed and t3 aborted", j)
	}
}

// FuzzLedgerPrepare: an op comes from the network; whatever its bytes, a
// Prepare refuses it or holds it, and an Abort leaves the balances as
// they were.
func FuzzLedgerPrepare(f *testing.F) {
	b, err := bank.New(bank.Config{DataDir: f.TempDir(), NoSync: true, Accounts: map[actors.NodeName]map[string]int64{"n": {"x": 100, "y": 0}}})
	if err != nil {
		f.Fatal(err)
	}
	r, err := b.Resource("n")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = r.Close() })
	tx, _ := bank.Move(map[bank.Account]int64{{Node: "n", Name: "x"}: -5, {Node: "n", Name: "y"}: 5})
	f.Add(tx.Parts[0].Op)
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Add([]byte("not a ledger op"))
	n := 0
	f.Fuzz(func(t *testing.T, op []byte) {
		n++ // a fresh transaction each time: an ended one is refused
		id := fmt.Sprintf("fuzz-%d", n)
		if err := r.Prepare(id, op); err == nil {
			if err := r.Abort(id); err != nil {
				t.Fatal(err)
			}
		}
		if p, _ := r.Prepared(); len(p) != 0 {
			t.Fatalf("left prepared: %v", p)
		}
		if bal, err := b.Balances("n"); err != nil || bal["x"] != 100 || bal["y"] != 0 {
			t.Fatalf("balances %v, %v", bal, err)
		}
	})
}

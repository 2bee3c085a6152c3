package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
)

// ErrInsufficientFunds: the transfer would overdraw its source (it was
// applied and refused: nothing moved). ErrBadTransfer: refused before it
// was proposed.
var (
	ErrInsufficientFunds = errors.New("ledger: insufficient funds")
	ErrBadTransfer       = errors.New("ledger: bad transfer")
)

// Transfer moves Amount from From to To; an empty From deposits. A request
// to the raft protocol (consensus.Name), answered with a Receipt.
type Transfer struct {
	actors.Returns[Receipt]
	From, To string
	Amount   int64
}

// Receipt: the log index the transfer applied at.
type Receipt struct{ Index uint64 }

// Balance asks for an account's balance, linearizably (after a ReadIndex).
type Balance struct {
	actors.Returns[int64]
	Account string
}

// Machine is the ledger, to host on the raft protocol (Config.Machines).
func Machine() consensus.Machine {
	return consensus.Machine{Name: "ledger", New: func(consensus.Env) consensus.StateMachine { return &ledger{balances: map[string]int64{}} }}
}

type ledger struct{ balances map[string]int64 }

type command struct {
	From, To string
	Amount   int64
}

func (l *ledger) Register(r *consensus.Router) {
	consensus.HandleCommand(r, func(t Transfer) ([]byte, error) {
		if t.Amount <= 0 || t.To == "" || t.From == t.To {
			return nil, fmt.Errorf("%w: %d from %q to %q; a positive amount between two accounts", ErrBadTransfer, t.Amount, t.From, t.To)
		}
		return json.Marshal(command{t.From, t.To, t.Amount})
	})
	consensus.HandleLookup(r, nil, func(b Balance, _ uint64) (int64, error) { return l.balances[b.Account], nil })
}

// Apply moves the money, or refuses — the same way on every node.
func (l *ledger) Apply(c consensus.Command) (any, error) {
	var t command
	if err := json.Unmarshal(c.Data, &t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTransfer, err)
	}
	if t.From != "" && l.balances[t.From] < t.Amount {
		return nil, fmt.Errorf("%w: %q holds %d, not %d", ErrInsufficientFunds, t.From, l.balances[t.From], t.Amount)
	}
	if t.From != "" {
		l.balances[t.From] -= t.Amount
	}
	l.balances[t.To] += t.Amount
	return Receipt{Index: c.Index}, nil
}

func (l *ledger) Snapshot() ([]byte, error) { return json.Marshal(l.balances) } // keys sorted

func (l *ledger) Restore(data []byte) error {
	l.balances = map[string]int64{}
	if data == nil {
		return nil
	}
	return json.Unmarshal(data, &l.balances)
}

// Move and Read are the blocking client, from outside the protocols.
func Move(ctx context.Context, node *actors.Node, from, to string, amount int64) (Receipt, error) {
	return consensus.Call(ctx, node, Transfer{From: from, To: to, Amount: amount}, func() string { return "transfer" })
}

// Read returns account's balance.
func Read(ctx context.Context, node *actors.Node, account string) (int64, error) {
	return consensus.Call(ctx, node, Balance{Account: account}, func() string { return "balance of " + account })
}

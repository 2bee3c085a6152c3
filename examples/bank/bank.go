package bank

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/commit"
	pb "github.com/troupe-dev/troupe/messages"
)

// Errors of the bank. A Prepare refused with one of them is a no vote,
// and its text the reason the transfer aborted.
var (
	ErrInvalidConfig     = errors.New("bank: invalid configuration")
	ErrInvalidTransfer   = errors.New("bank: invalid transfer")
	ErrNoAccount         = errors.New("bank: no such account")
	ErrInsufficientFunds = errors.New("bank: insufficient funds")
	ErrEnded             = errors.New("bank: transaction already ended here")
)

// Account names an account: the node whose ledger holds it, and its name
// in that ledger.
type Account struct {
	Node actors.NodeName
	Name string
}

func (a Account) String() string { return string(a.Node) + "/" + a.Name }

// Config sets up a bank.
type Config struct {
	// DataDir is the root of the ledgers: a node's is
	// DataDir/<node>/ledger.db. Required.
	DataDir string
	// Accounts are the opening balances, per node and account, written
	// when a node's ledger is created. A node not listed has no accounts.
	Accounts map[actors.NodeName]map[string]int64
	// NoSync turns off fsync of the ledgers (tests and benchmarks).
	NoSync bool
}

// Bank is the ledgers of a cluster's nodes, in one process: it opens a
// node's ledger for the commit protocol ([Bank.Resource]) and reads any
// ledger, open or not, for checks ([Bank.Balances], [Bank.Total]).
// Safe for concurrent use.
type Bank struct {
	cfg  Config
	mu   sync.Mutex
	open map[actors.NodeName]*Ledger
}

// New checks cfg and returns a bank; ledgers are created when first
// opened.
func New(cfg Config) (*Bank, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: DataDir is empty; the ledgers need a directory", ErrInvalidConfig)
	}
	for node, accounts := range cfg.Accounts {
		for name, balance := range accounts {
			if name == "" || balance < 0 {
				return nil, fmt.Errorf("%w: node %s: account %q with balance %d; names are non-empty, balances not negative", ErrInvalidConfig, node, name, balance)
			}
		}
	}
	return &Bank{cfg: cfg, open: map[actors.NodeName]*Ledger{}}, nil
}

// Transfer is the transaction that moves amount from one account to
// another: a debit on from's node and a credit on to's (one part when
// both are on the same node).
func Transfer(from, to Account, amount int64) (commit.Transaction, error) {
	switch {
	case amount <= 0:
		return commit.Transaction{}, fmt.Errorf("%w: amount %d; it must be positive", ErrInvalidTransfer, amount)
	case from == to:
		return commit.Transaction{}, fmt.Errorf("%w: from and to are both %s", ErrInvalidTransfer, from)
	}
	return Move(map[Account]int64{from: -amount, to: amount})
}

// Move is the transaction that changes several accounts at once, on any
// nodes: one part per node. The changes must sum to zero, so that the
// bank's total does not change.
func Move(changes map[Account]int64) (commit.Transaction, error) {
	var sum int64
	byNode := map[actors.NodeName][]*pb.LedgerEntry{}
	for _, a := range slices.SortedFunc(maps.Keys(changes), func(x, y Account) int { return strings.Compare(x.String(), y.String()) }) {
		if a.Node == "" || a.Name == "" {
			return commit.Transaction{}, fmt.Errorf("%w: account %q; an account needs a node and a name", ErrInvalidTransfer, a)
		}
		d := changes[a]
		if d == 0 {
			return commit.Transaction{}, fmt.Errorf("%w: a change of 0 to %s", ErrInvalidTransfer, a)
		}
		sum += d
		byNode[a.Node] = append(byNode[a.Node], &pb.LedgerEntry{Account: a.Name, Delta: d})
	}
	if len(changes) == 0 || sum != 0 {
		return commit.Transaction{}, fmt.Errorf("%w: %d changes summing to %d; a move needs changes that sum to 0", ErrInvalidTransfer, len(changes), sum)
	}
	var tx commit.Transaction
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		tx.Parts = append(tx.Parts, commit.Part{Node: node, Op: encode(byNode[node]...)})
	}
	return tx, nil
}

func encode(entries ...*pb.LedgerEntry) []byte {
	b, err := proto.Marshal(&pb.LedgerOp{Entries: entries})
	if err != nil {
		panic(err) // a LedgerOp always marshals
	}
	return b
}

// Resource opens node's ledger, creating it with its opening balances the
// first time: the function for commit.Config.Resource.
func (b *Bank) Resource(node actors.NodeName) (commit.Resource, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.open[node]; ok {
		return nil, fmt.Errorf("bank: the ledger of %s is already open", node)
	}
	l, err := b.openLedger(node)
	if err != nil {
		return nil, err
	}
	b.open[node] = l
	return l, nil
}

var (
	bucketAccounts = []byte("accounts") // name → balance (8 bytes, big endian two's complement)
	bucketPending  = []byte("pending")  // tx → LedgerOp, prepared and not ended
	bucketJournal  = []byte("journal")  // tx → "commit" or "abort", for every prepared transaction that ended
)

func (b *Bank) path(node actors.NodeName) string {
	return filepath.Join(b.cfg.DataDir, string(node), "ledger.db")
}

func (b *Bank) openLedger(node actors.NodeName) (*Ledger, error) {
	if err := os.MkdirAll(filepath.Dir(b.path(node)), 0o750); err != nil {
		return nil, fmt.Errorf("bank: %w", err)
	}
	db, err := bolt.Open(b.path(node), 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: b.cfg.NoSync})
	if err != nil {
		return nil, fmt.Errorf("bank: opening the ledger of %s: %w", node, err)
	}
	l := &Ledger{bank: b, node: node, db: db, held: map[string]int64{}}
	err = db.Update(func(tx *bolt.Tx) error {
		acc := tx.Bucket(bucketAccounts)
		if acc == nil {
			var err error
			if acc, err = tx.CreateBucket(bucketAccounts); err != nil {
				return err
			}
			for name, balance := range b.cfg.Accounts[node] {
				if err := acc.Put([]byte(name), amount(balance)); err != nil {
					return err
				}
			}
		}
		for _, name := range [][]byte{bucketPending, bucketJournal} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		// Rebuild the debits held by prepared transactions.
		return tx.Bucket(bucketPending).ForEach(func(k, v []byte) error {
			op, err := decode(v)
			if err != nil {
				return fmt.Errorf("pending %s: %w", k, err)
			}
			l.hold(op, 1)
			return nil
		})
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bank: preparing the ledger of %s: %w", node, err)
	}
	return l, nil
}

func amount(v int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return b[:]
}

func balanceOf(v []byte) int64 { return int64(binary.BigEndian.Uint64(v)) }

func decode(b []byte) (*pb.LedgerOp, error) {
	op := &pb.LedgerOp{}
	if err := proto.Unmarshal(b, op); err != nil {
		return nil, fmt.Errorf("%w: the op does not decode as a LedgerOp: %v", ErrInvalidTransfer, err)
	}
	return op, nil
}

// Ledger is one node's accounts: a commit.Resource. A Prepare checks the
// accounts and holds the debits (an account's balance minus its held
// debits never goes below zero), so that the Commit cannot fail; it never
// waits for another transaction.
type Ledger struct {
	bank *Bank
	node actors.NodeName
	db   *bolt.DB
	held map[string]int64 // debits held by prepared transactions, per account (negative); only the commit protocol's calls touch it
}

var _ commit.Resource = (*Ledger)(nil)

// hold adds (sign 1) or releases (sign -1) the debits of op.
func (l *Ledger) hold(op *pb.LedgerOp, sign int64) {
	for _, e := range op.Entries {
		if e.Delta < 0 {
			l.held[e.Account] += sign * e.Delta
			if l.held[e.Account] == 0 {
				delete(l.held, e.Account)
			}
		}
	}
}

// Prepare checks op against the ledger and records it as pending.
func (l *Ledger) Prepare(tx string, opBytes []byte) error {
	op, err := decode(opBytes)
	if err != nil {
		return err
	}
	if len(op.Entries) == 0 {
		return fmt.Errorf("%w: an op with no entries", ErrInvalidTransfer)
	}
	return l.db.Update(func(btx *bolt.Tx) error {
		pending := btx.Bucket(bucketPending)
		if pending.Get([]byte(tx)) != nil {
			return nil // prepared already
		}
		if v := btx.Bucket(bucketJournal).Get([]byte(tx)); v != nil {
			return fmt.Errorf("%w: %s %s on %s", ErrEnded, tx, v, l.node)
		}
		acc := btx.Bucket(bucketAccounts)
		change := map[string]int64{}
		for _, e := range op.Entries {
			if acc.Get([]byte(e.Account)) == nil {
				var names []string
				_ = acc.ForEach(func(k, _ []byte) error { names = append(names, string(k)); return nil })
				return fmt.Errorf("%w: %q on %s (accounts: %v)", ErrNoAccount, e.Account, l.node, names)
			}
			change[e.Account] += e.Delta
		}
		for _, name := range slices.Sorted(maps.Keys(change)) {
			available := balanceOf(acc.Get([]byte(name))) + l.held[name]
			if d := change[name]; d < 0 && available+d < 0 {
				return fmt.Errorf("%w: %s/%s has %d available, the transfer takes %d", ErrInsufficientFunds, l.node, name, available, -d)
			}
		}
		if err := pending.Put([]byte(tx), opBytes); err != nil {
			return err
		}
		l.hold(op, 1)
		return nil
	})
}

// Commit applies a pending op to the balances.
func (l *Ledger) Commit(tx string) error { return l.end(tx, true) }

// Abort drops a pending op.
func (l *Ledger) Abort(tx string) error { return l.end(tx, false) }

func (l *Ledger) end(tx string, commit bool) error {
	var op *pb.LedgerOp
	err := l.db.Update(func(btx *bolt.Tx) error {
		pending := btx.Bucket(bucketPending)
		v := pending.Get([]byte(tx))
		if v == nil {
			return nil // not prepared: ended already, or never prepared
		}
		var err error
		if op, err = decode(v); err != nil {
			return err
		}
		outcome := "abort"
		if commit {
			outcome = "commit"
			acc := btx.Bucket(bucketAccounts)
			for _, e := range op.Entries {
				if err := acc.Put([]byte(e.Account), amount(balanceOf(acc.Get([]byte(e.Account)))+e.Delta)); err != nil {
					return err
				}
			}
		}
		if err := btx.Bucket(bucketJournal).Put([]byte(tx), []byte(outcome)); err != nil {
			return err
		}
		return pending.Delete([]byte(tx))
	})
	if err == nil && op != nil {
		l.hold(op, -1)
	}
	return err
}

// Prepared lists the pending transactions.
func (l *Ledger) Prepared() ([]string, error) {
	var txs []string
	err := l.db.View(func(btx *bolt.Tx) error {
		return btx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
			txs = append(txs, string(k))
			return nil
		})
	})
	return txs, err
}

// Close closes the ledger file.
func (l *Ledger) Close() error {
	l.bank.mu.Lock()
	defer l.bank.mu.Unlock()
	if l.bank.open[l.node] == l {
		delete(l.bank.open, l.node)
	}
	return l.db.Close()
}

// Nodes lists the nodes that have accounts, sorted.
func (b *Bank) Nodes() []actors.NodeName { return slices.Sorted(maps.Keys(b.cfg.Accounts)) }

// view reads node's ledger: the open one, or the file read-only, or (no
// file yet) nothing.
func (b *Bank) view(node actors.NodeName, fn func(*bolt.Tx) error) (exists bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l := b.open[node]; l != nil {
		return true, l.db.View(fn)
	}
	if _, err := os.Stat(b.path(node)); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	db, err := bolt.Open(b.path(node), 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		return false, fmt.Errorf("bank: reading the ledger of %s: %w", node, err)
	}
	defer db.Close()
	return true, db.View(fn)
}

// Balances returns the committed balances of node's accounts.
func (b *Bank) Balances(node actors.NodeName) (map[string]int64, error) {
	out := map[string]int64{}
	exists, err := b.view(node, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAccounts).ForEach(func(k, v []byte) error {
			out[string(k)] = balanceOf(v)
			return nil
		})
	})
	if !exists && err == nil {
		maps.Copy(out, b.cfg.Accounts[node])
	}
	return out, err
}

// Total is the sum of every committed balance of every node. Transfers
// between nodes keep it unchanged once they have ended everywhere.
func (b *Bank) Total() (int64, error) {
	var total int64
	for _, node := range b.Nodes() {
		bal, err := b.Balances(node)
		if err != nil {
			return 0, err
		}
		for _, v := range bal {
			total += v
		}
	}
	return total, nil
}

// Journal returns how the transactions node's ledger prepared ended: true
// for commit.
func (b *Bank) Journal(node actors.NodeName) (map[string]bool, error) {
	out := map[string]bool{}
	_, err := b.view(node, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJournal).ForEach(func(k, v []byte) error {
			out[string(k)] = string(v) == "commit"
			return nil
		})
	})
	return out, err
}

// Pending lists the transactions node's ledger holds prepared.
func (b *Bank) Pending(node actors.NodeName) ([]string, error) {
	var out []string
	_, err := b.view(node, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

package commit_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/commit"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/examples/bank"
)

var modes = []commit.Mode{commit.Textbook, commit.Consensus}

func TestTransfersCommitOrAbortEverywhere(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 3, mode, 1)
			// Between two other nodes, from the coordinator, and within one node.
			cases := []struct {
				coord    actors.NodeName
				from, to bank.Account
				amount   int64
				commit   bool
				reason   string
			}{
				{"node-1", acct("node-2", "a"), acct("node-3", "a"), 100, true, ""},
				{"node-1", acct("node-1", "a"), acct("node-2", "b"), 250, true, ""},
				{"node-3", acct("node-3", "a"), acct("node-3", "b"), 50, true, ""},
				{"node-2", acct("node-2", "a"), acct("node-1", "a"), 5000, false, "node-2 voted no: bank: insufficient funds: node-2/a has 900 available, the transfer takes 5000"},
				{"node-1", acct("node-2", "a"), acct("node-3", "nope"), 1, false, `node-3 voted no: bank: no such account: "nope" on node-3`},
			}
			for _, c := range cases {
				tx := e.transfer(c.from, c.to, c.amount)
				out, err := e.do(c.coord, tx)
				if err != nil {
					t.Fatalf("%v → %v: %v", c.from, c.to, err)
				}
				if out.Committed != c.commit || !strings.HasPrefix(out.Reason, c.reason) {
					t.Fatalf("%v → %v: outcome %+v, want committed=%v with reason %q", c.from, c.to, out, c.commit, c.reason)
				}
				if commit.CoordinatorOf(out.ID) != c.coord {
					t.Errorf("transaction id %q does not name its coordinator %s", out.ID, c.coord)
				}
				e.waitQuiet(5 * time.Second)
				o := e.ledgers(out.ID, participantsOf(tx))
				if c.commit && len(o.committed) != len(tx.Parts) || !c.commit && len(o.committed) != 0 {
					t.Fatalf("%s: %v, want committed=%v everywhere", out.ID, o, c.commit)
				}
				for _, n := range participantsOf(tx) {
					st, err := actors.Call(context.Background(), e.node(n), commit.Name, commit.StatusRequest{ID: out.ID})
					if err != nil {
						t.Fatal(err)
					}
					want := commit.Aborted
					if c.commit {
						want = commit.Committed
					}
					if st.Participant != want || st.Coordinator != commit.Unknown {
						t.Errorf("%s on %s: %+v, want participant %q and the coordinator done", out.ID, n, st, want)
					}
				}
				if mode == commit.Consensus {
					if err := e.keyGone(out.ID); err != nil {
						t.Errorf("after the transaction ended: %v", err)
					}
				}
			}
			want := map[actors.NodeName]map[string]int64{
				"node-1": {"a": 750, "b": 1000},
				"node-2": {"a": 900, "b": 1250},
				"node-3": {"a": 1100 - 50, "b": 1050},
			}
			for n, w := range want {
				got, err := e.bank.Balances(n)
				if err != nil {
					t.Fatal(err)
				}
				if got["a"] != w["a"] || got["b"] != w["b"] {
					t.Errorf("balances of %s: %v, want %v", n, got, w)
				}
			}
			e.checkTotal()
		})
	}
}

func TestBadTransactionsAreRefused(t *testing.T) { actortest.Virtual(t, testBadTransactionsAreRefused) }

func testBadTransactionsAreRefused(t *testing.T) {
	e := newEnv(t, 3, commit.Textbook, 2, withConfig(func(c *commit.Config) { c.MaxOpBytes = 64 }))
	ok, _ := bank.Transfer(acct("node-1", "a"), acct("node-2", "a"), 1)
	cases := []struct {
		name string
		tx   commit.Transaction
		err  error
		msg  string
	}{
		{"empty", commit.Transaction{}, commit.ErrInvalidTransaction, "no participants"},
		{"duplicate participant", commit.Transaction{Parts: []commit.Part{ok.Parts[0], ok.Parts[1], ok.Parts[0]}},
			commit.ErrInvalidTransaction, "node node-1 is named by parts 0 and 2"},
		{"no node name", commit.Transaction{Parts: []commit.Part{{Op: []byte("x")}}}, commit.ErrInvalidTransaction, "part 0: participant node name is empty"},
		{"bad node name", commit.Transaction{Parts: []commit.Part{{Node: "node 1"}}}, commit.ErrInvalidTransaction, `participant node name "node 1" has ' '`},
		{"op too large", commit.Transaction{Parts: []commit.Part{{Node: "node-1", Op: make([]byte, 65)}}}, commit.ErrInvalidTransaction, "the op of node-1 is 65 bytes; at most 64"},
	}
	for _, c := range cases {
		out, err := e.do("node-1", c.tx)
		if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %v saying %q", c.name, err, c.err, c.msg)
		}
		if out.ID != "" {
			t.Errorf("%s: refused, yet given id %q", c.name, out.ID)
		}
	}

	// An unknown node: the network does not know it, so the coordinator
	// finds out when it sends the Prepare, aborts, and says why.
	tx, _ := bank.Transfer(acct("node-1", "a"), acct("node-9", "a"), 5)
	_, err := e.do("node-1", tx)
	id := ""
	if err != nil {
		if _, rest, ok := strings.Cut(err.Error(), "; transaction "); ok {
			id, _, _ = strings.Cut(rest, " ")
		}
	}
	if !errors.Is(err, commit.ErrUnknownNode) || !strings.Contains(err.Error(), "node-9") || !strings.HasPrefix(id, "node-1.") {
		t.Errorf("a transfer to node-9: %v; want ErrUnknownNode naming node-9 and the aborted transaction", err)
	}
	e.waitQuiet(5 * time.Second)
	if o := e.ledgers(id, []actors.NodeName{"node-1"}); len(o.committed) != 0 {
		t.Errorf("the part of node-1 in a transaction with an unknown node: %v", o)
	}
	e.checkTotal()
	if _, err := bank.Transfer(acct("node-1", "a"), acct("node-1", "a"), 5); !errors.Is(err, bank.ErrInvalidTransfer) {
		t.Errorf("a transfer to the same account: %v, want ErrInvalidTransfer", err)
	}
	if _, err := bank.Transfer(acct("node-1", "a"), acct("node-2", "a"), 0); !errors.Is(err, bank.ErrInvalidTransfer) {
		t.Errorf("a transfer of 0: %v, want ErrInvalidTransfer", err)
	}
}

func TestUnknownNodeRefusedWithConfiguredNodes(t *testing.T) {
	actortest.Virtual(t, testUnknownNodeRefusedWithConfiguredNodes)
}

func testUnknownNodeRefusedWithConfiguredNodes(t *testing.T) {
	e := newEnv(t, 2, commit.Textbook, 3, withConfig(func(c *commit.Config) { c.Nodes = []actors.NodeName{"node-1", "node-2"} }))
	tx, _ := bank.Transfer(acct("node-1", "a"), acct("node-7", "a"), 5)
	out, err := e.do("node-1", tx)
	if !errors.Is(err, commit.ErrUnknownNode) || !strings.Contains(err.Error(), "node-7 (part 1); the nodes are [node-1 node-2]") || out.ID != "" {
		t.Errorf("%+v, %v; want ErrUnknownNode naming node-7 and the nodes, before any transaction", out, err)
	}
}

func TestInvalidConfigIsRefused(t *testing.T) { actortest.Virtual(t, testInvalidConfigIsRefused) }

func testInvalidConfigIsRefused(t *testing.T) {
	base := testConfig(t.TempDir(), commit.Textbook)
	base.Resource = func(actors.NodeName) (commit.Resource, error) { return nil, errors.New("unused") }
	cases := []struct {
		name string
		f    func(*commit.Config)
		msg  string
	}{
		{"no dir", func(c *commit.Config) { c.DataDir = "" }, "DataDir is empty"},
		{"no resource", func(c *commit.Config) { c.Resource = nil }, "Resource is nil"},
		{"bad mode", func(c *commit.Config) { c.Mode = "paxos" }, `Mode "paxos"; valid: "textbook", "consensus"`},
		{"abandon before vote timeout", func(c *commit.Config) { c.AbandonAfter = c.VoteTimeout }, "AbandonAfter (300ms) must exceed VoteTimeout (300ms)"},
		{"zero retry", func(c *commit.Config) { c.RetryInterval = 0 }, "RetryInterval is 0s; it must be positive"},
		{"duplicate node", func(c *commit.Config) { c.Nodes = []actors.NodeName{"a", "a"} }, `Nodes lists "a" twice`},
	}
	for _, c := range cases {
		cfg := base
		c.f(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, commit.ErrInvalidConfig) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want ErrInvalidConfig saying %q", c.name, err, c.msg)
		}
		if f, nerr := commit.New(cfg); f != nil || nerr == nil || nerr.Error() != err.Error() {
			t.Errorf("%s: New = %v, %v; want Validate's error", c.name, f != nil, nerr)
		}
	}
	if err := base.Validate(); err != nil {
		t.Errorf("the test config: %v", err)
	}

	// Consensus mode without a raft protocol on the node.
	c := clustertest.NewCluster(t, 1, consensustest.Logger())
	cfg := base
	cfg.Mode = commit.Consensus
	b, _ := bank.New(bank.Config{DataDir: cfg.DataDir, NoSync: true})
	cfg.Resource = b.Resource
	cf, err := commit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(cf); !errors.Is(err, commit.ErrNoConsensus) {
		t.Errorf("consensus mode without raft: %v, want ErrNoConsensus", err)
	}
}

// The coordinator aborts when a vote does not come in time. Here node-3's
// resource takes longer than the vote timeout (and than nothing else: its
// PrepareTimeout is long), so the abort reaches node-3 while it prepares.
func TestVoteTimeoutAborts(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			e := newEnv(t, 3, mode, 4, withConfig(func(c *commit.Config) { c.PrepareTimeout = time.Minute }),
				withResource(func(node actors.NodeName, r commit.Resource) commit.Resource {
					if node == "node-3" {
						return &slowResource{Resource: r, release: release}
					}
					return r
				}))
			tx := e.transfer(acct("node-2", "a"), acct("node-3", "a"), 10)
			out, err := e.do("node-1", tx)
			if err != nil {
				t.Fatal(err)
			}
			if out.Committed || !strings.Contains(out.Reason, "no vote from node-3 within 300ms (VoteTimeout)") {
				t.Fatalf("outcome %+v, want an abort for node-3's missing vote", out)
			}
			actortest.Eventually(t, 5*time.Second, "node-3 takes the abort while it prepares", func() bool {
				st, err := actors.Call(context.Background(), e.node("node-3"), commit.Name, commit.StatusRequest{ID: out.ID})
				return err == nil && st.Participant == commit.Aborted
			})
			close(release)
			e.waitQuiet(5 * time.Second)
			if o := e.ledgers(out.ID, participantsOf(tx)); len(o.committed) != 0 {
				t.Fatalf("%v, want no commit", o)
			}
			st, err := actors.Call(context.Background(), e.node("node-3"), commit.Name, commit.StatsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if st.UnilateralAborts != 1 {
				t.Errorf("node-3: %+v; want its part aborted before it voted", st)
			}
			e.checkTotal()
		})
	}
}

// A participant whose vote is lost is in doubt after the coordinator's
// vote timeout, and learns the abort once it reaches the coordinator.
func TestLostVoteResolvesToAbort(t *testing.T) { actortest.Virtual(t, testLostVoteResolvesToAbort) }

func testLostVoteResolvesToAbort(t *testing.T) {
	e := newEnv(t, 3, commit.Textbook, 4)
	e.c.Hub.Block("node-3", "node-1") // node-3's vote (and queries) are lost
	tx := e.transfer(acct("node-2", "a"), acct("node-3", "a"), 10)
	out, err := e.do("node-1", tx)
	if err != nil {
		t.Fatal(err)
	}
	if out.Committed || !strings.Contains(out.Reason, "no vote from node-3 within 300ms (VoteTimeout)") {
		t.Fatalf("outcome %+v, want an abort for node-3's missing vote", out)
	}
	st, err := actors.Call(context.Background(), e.node("node-3"), commit.Name, commit.StatusRequest{ID: out.ID})
	if err != nil {
		t.Fatal(err)
	}
	if st.Participant != commit.InDoubt && st.Participant != commit.Aborted {
		t.Errorf("node-3 cut off from the coordinator: %+v, want in doubt (or aborted by the decision)", st)
	}
	e.c.Hub.Unblock("node-3", "node-1")
	e.waitQuiet(5 * time.Second)
	if o := e.ledgers(out.ID, participantsOf(tx)); len(o.committed) != 0 {
		t.Fatalf("%v, want no commit", o)
	}
	e.checkTotal()
}

// slowResource holds Prepares of one node until released.
type slowResource struct {
	commit.Resource
	release chan struct{}
}

func (s *slowResource) Prepare(tx string, op []byte) error {
	<-s.release
	return s.Resource.Prepare(tx, op)
}

// A participant whose resource takes longer than PrepareTimeout aborts its
// part on its own and votes no; when the Prepare ends, it is undone.
func TestSlowPrepareAbortsUnilaterally(t *testing.T) {
	actortest.Virtual(t, testSlowPrepareAbortsUnilaterally)
}

func testSlowPrepareAbortsUnilaterally(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, 3, commit.Textbook, 5, withResource(func(node actors.NodeName, r commit.Resource) commit.Resource {
		if node == "node-3" {
			return &slowResource{Resource: r, release: release}
		}
		return r
	}))
	tx := e.transfer(acct("node-2", "a"), acct("node-3", "a"), 10)
	out, err := e.do("node-1", tx)
	if err != nil {
		t.Fatal(err)
	}
	if out.Committed || !strings.Contains(out.Reason, "node-3 voted no: the resource did not prepare within 150ms (PrepareTimeout)") {
		t.Fatalf("outcome %+v, want node-3's unilateral abort", out)
	}
	close(release) // the Prepare completes, and the queued Abort undoes it
	e.waitQuiet(5 * time.Second)
	st, err := actors.Call(context.Background(), e.node("node-3"), commit.Name, commit.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.UnilateralAborts != 1 {
		t.Errorf("node-3 stats %+v, want 1 unilateral abort", st)
	}
	if o := e.ledgers(out.ID, participantsOf(tx)); len(o.committed) != 0 {
		t.Fatalf("%v, want no commit", o)
	}
	e.checkTotal()
}

// In Textbook mode participants that voted yes wait for a crashed
// coordinator; in Consensus mode they decide through the group without it.
func TestCoordinatorCrashBlocksOnlyTextbook(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 3, mode, 6)
			crashed := make(chan string, 1)
			e.setHook(func(s commit.Step, node actors.NodeName, tx string) bool {
				if s == "coordinator.votes-in" && node == "node-1" {
					e.setHook(nil)
					go func() { _ = e.c.Crash("node-1"); crashed <- tx }()
					return true
				}
				return false
			})
			tx := e.transfer(acct("node-2", "a"), acct("node-3", "a"), 10)
			if _, err := e.do("node-1", tx); !errors.Is(err, commit.ErrStopped) {
				t.Fatalf("a coordinator that crashes before deciding: %v, want ErrStopped", err)
			}
			id := actortest.Receive(t, crashed, 5*time.Second, "the crash")
			inDoubt := func() int {
				n := 0
				for _, node := range []actors.NodeName{"node-2", "node-3"} {
					st, err := actors.Call(context.Background(), e.node(node), commit.Name, commit.StatusRequest{ID: id})
					if err == nil && st.Participant == commit.InDoubt {
						n++
					}
				}
				return n
			}
			if mode == commit.Textbook {
				// Nothing can end the wait but the coordinator: still in
				// doubt after twice the time Consensus mode needs.
				deadline := time.Now().Add(2 * 500 * time.Millisecond)
				for time.Now().Before(deadline) {
					if n := inDoubt(); n != 2 {
						t.Fatalf("%d of 2 participants in doubt while the coordinator is down; textbook 2PC blocks", n)
					}
					time.Sleep(50 * time.Millisecond) // sampling the state, not synchronising
				}
			} else {
				actortest.Eventually(t, 5*time.Second, "participants resolve without the coordinator", func() bool {
					return inDoubt() == 0
				})
				if o := e.ledgers(id, participantsOf(tx)); len(o.aborted) != 2 {
					t.Fatalf("resolved without the coordinator: %v, want aborted at both", o)
				}
			}
			if _, err := e.c.Restart("node-1"); err != nil {
				t.Fatal(err)
			}
			e.waitQuiet(5 * time.Second)
			if o := e.ledgers(id, participantsOf(tx)); len(o.aborted) != 2 {
				t.Fatalf("after the coordinator's restart: %v, want aborted at both", o)
			}
			if mode == commit.Consensus {
				if err := e.keyGone(id); err != nil {
					t.Error(err)
				}
			}
			e.checkTotal()
		})
	}
}

package consensus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/transport/sim"
)

// Writes a follower forwarded to a leader that then went away are proposed
// again to the next leader: each is applied once, or answered not applied —
// none waits for its timeout to come back "may or may not".
func TestLeaderChangeLosesNoForwardedWrite(t *testing.T) {
	actortest.Virtual(t, testLeaderChangeLosesNoForwardedWrite)
}

func testLeaderChangeLosesNoForwardedWrite(t *testing.T) {
	g := newGroup(t, 3, 21, sim.Faults{}, func(c *consensus.Config) { c.RequestTimeout = 5 * time.Second })
	lead := g.leader(5 * time.Second)
	others := g.others(lead)
	f, other := others[0], others[1]
	// f hears the leader but its forwarded proposals never arrive: they
	// are in flight when the leader crashes.
	g.c.Hub.Block(string(f), string(lead))
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	kc := g.kv(f)
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, errs[i] = kc.Put(ctx, fmt.Sprintf("w%d", i), []byte("v"))
		})
	}
	actortest.Eventually(t, 5*time.Second, "the follower forwarded the writes", func() bool {
		st, err := g.status(f)
		return err == nil && st.Proposals >= n
	})
	if err := g.c.Crash(lead); err != nil {
		t.Fatal(err)
	}
	g.c.Hub.Heal()
	wg.Wait()
	applied := 0
	for i, err := range errs {
		switch {
		case err == nil:
			applied++
		case errors.Is(err, consensus.ErrNotApplied):
		default:
			t.Errorf("write w%d: %v; want it applied, or not applied", i, err)
		}
	}
	if st, err := g.status(f); err != nil || st.Reproposed == 0 {
		t.Errorf("the follower's status: %+v, %v; want writes proposed again", st, err)
	}
	// The store holds exactly the applied writes; each once: deleted, none
	// comes back, even after the old leader returns with its log.
	okv := g.kv(other)
	for i, err := range errs {
		_, found, gerr := okv.Get(ctxT(t, 5*time.Second), fmt.Sprintf("w%d", i))
		if gerr != nil || found != (err == nil) {
			t.Errorf("w%d in the store: found %v (%v); the write answered %v", i, found, gerr, err)
		}
		if _, derr := okv.Delete(ctxT(t, 5*time.Second), fmt.Sprintf("w%d", i)); derr != nil {
			t.Fatal(derr)
		}
	}
	if _, err := g.c.Restart(lead); err != nil {
		t.Fatal(err)
	}
	g.leader(10 * time.Second)
	for _, name := range g.c.Names() {
		if _, err := g.kv(name).Put(ctxT(t, 5*time.Second), "barrier-"+string(name), []byte("b")); err != nil {
			t.Fatalf("barrier through %s: %v", name, err)
		}
		for i := range n {
			if _, found, err := g.kv(name).Get(ctxT(t, 5*time.Second), fmt.Sprintf("w%d", i)); err != nil || found {
				t.Errorf("w%d on %s after its delete: found %v (%v); a copy applied twice", i, name, found, err)
			}
		}
	}
	t.Logf("%d of %d writes applied, the rest not applied", applied, n)
}

// A node cut off from the group holds a write rather than send it into the
// cut, and answers it not applied — never "unknown" — and the store never
// gets it.
func TestWriteOnCutOffNodeIsNotApplied(t *testing.T) {
	actortest.Virtual(t, testWriteOnCutOffNodeIsNotApplied)
}

func testWriteOnCutOffNodeIsNotApplied(t *testing.T) {
	g := newGroup(t, 3, 22, sim.Faults{}, func(c *consensus.Config) {
		c.ElectionTicks = 60 // room between "the leader went silent" and "no leader"
		c.RequestTimeout = 2 * time.Second
	})
	lead := g.leader(10 * time.Second)
	f := g.others(lead)[0]
	g.c.Partition([]actors.NodeName{f})
	actortest.Eventually(t, 5*time.Second, "the cut-off follower holds writes", func() bool {
		st, err := g.status(f)
		return err == nil && st.Leader != "" && st.Holding
	})
	_, err := g.kv(f).Put(ctxT(t, 10*time.Second), "cut", []byte("v"))
	if !errors.Is(err, consensus.ErrNotApplied) || errors.Is(err, consensus.ErrTimeout) {
		t.Fatalf("a write on a cut-off node: %v; want ErrNotApplied", err)
	}
	g.c.Hub.Heal()
	g.leader(10 * time.Second)
	for _, name := range g.c.Names() {
		if _, found, err := g.kv(name).Get(ctxT(t, 5*time.Second), "cut"); err != nil || found {
			t.Errorf("the refused write on %s: found %v (%v); want it absent", name, found, err)
		}
	}
}

// A minority answers no_quorum, with how many voters of how many it
// reaches and which; its status says so too.
func TestMinorityAnswersNoQuorum(t *testing.T) { actortest.Virtual(t, testMinorityAnswersNoQuorum) }

func testMinorityAnswersNoQuorum(t *testing.T) {
	g := newGroup(t, 5, 23, sim.Faults{}, nil)
	g.leader(10 * time.Second)
	names := g.c.Names()
	minority := names[:2]
	g.c.Partition(minority)
	var u *consensus.UnavailableError
	actortest.Eventually(t, 10*time.Second, "the minority answers no quorum", func() bool {
		_, err := g.kv(minority[0]).Put(ctxT(t, 10*time.Second), "k", []byte("v"))
		return errors.As(err, &u) && errors.Is(err, consensus.ErrNoQuorum)
	})
	if !slices.Equal(u.Reachable, minority) || len(u.Voters) != 5 || !errors.Is(u, consensus.ErrNotApplied) {
		t.Errorf("no quorum: reachable %v of %v; want %v of 5", u.Reachable, u.Voters, minority)
	}
	st, err := g.status(minority[0])
	if err != nil || st.Leader != "" || st.Reason != "no_quorum" || len(st.Reachable) != 2 {
		t.Errorf("the minority's status: %+v (%v); want no leader, reason no_quorum, 2 reachable", st, err)
	}
	// The majority elects a leader and says nothing of the kind.
	actortest.Eventually(t, 10*time.Second, "the majority has a leader", func() bool {
		st, err := g.status(names[4])
		return err == nil && st.Leader != "" && !slices.Contains(minority, st.Leader) && st.Reason == ""
	})
}

package consensus_test

import (
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/transport/sim"
)

// While the leader's own disk write is held, its mailbox keeps working:
// it steps the followers' acknowledgements (the entry commits on theirs
// alone, and they apply it) and answers requests; it applies the entry,
// and answers the write, only once its own write is done.
func TestLeaderStepsWhileItsDiskWrites(t *testing.T) {
	var mu sync.Mutex
	var held actors.NodeName // the node whose writes block on release
	release := make(chan struct{})
	g := newGroup(t, 3, 7, sim.Faults{}, func(cfg *consensus.Config) {
		consensus.HookWrites(cfg, func(node actors.NodeName) {
			mu.Lock()
			hold := node == held
			mu.Unlock()
			if hold {
				<-release
			}
		})
	})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	lead := g.leader(5 * time.Second)
	st, err := g.status(lead)
	if err != nil {
		t.Fatal(err)
	}
	before := st.Commit
	mu.Lock()
	held = lead
	mu.Unlock()

	done := make(chan error, 1)
	go func() {
		_, err := g.kv(lead).Put(ctxT(t, 10*time.Second), "k", []byte("v"))
		done <- err
	}()
	var followers []actors.NodeName
	for _, n := range g.c.Names() {
		if n != lead {
			followers = append(followers, n)
		}
	}
	actortest.Eventually(t, 5*time.Second, "the write committed and applied on the followers while the leader's disk is held", func() bool {
		st, err := g.status(lead) // the leader's mailbox answers
		if err != nil || st.Commit <= before {
			return false
		}
		for _, f := range followers {
			if fs, err := g.status(f); err != nil || fs.Applied <= before {
				return false
			}
		}
		return true
	})
	st, err = g.status(lead)
	if err != nil {
		t.Fatal(err)
	}
	if st.Applied > before {
		t.Fatalf("the leader applied index %d before its own write of it was done (commit %d)", st.Applied, st.Commit)
	}
	select {
	case err := <-done:
		t.Fatalf("the write was answered (%v) before the leader's own write was done", err)
	default:
	}
	unblock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write was not answered 10 s after the leader's disk was released")
	}
	checkAll(t, g.kv(lead), map[string]string{"k": "v"})
}

package consensus_test

import (
	"flag"
	"strings"
	"sync"
	"testing"

	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/simulation"
)

var (
	flagSimSeed  = flag.Uint64("simulation.seed", 0, "replay this seed of the broken-raft sweep (with -simulation.trace to print its trace)")
	flagSimTrace = flag.Bool("simulation.trace", false, "print the trace of -simulation.seed")
)

// brokenRaftKV is raft-kv on a Raft that forgets its vote when it
// restarts, under crash storms: restarts between the messages of an
// election.
func brokenRaftKV() simulation.Scenario {
	return simulation.RaftKV(simulation.RaftKVConfig{Raft: consensus.ForgetVoteOnRestart, Profile: "crash-storm"})
}

// TestSimulationCatchesForgottenVote shows that the deterministic
// simulation finds a deliberately broken Raft within a bounded number of
// seeds, and that the failing seed replays the same failure, trace for
// trace. -simulation.seed=S -simulation.trace prints the run of one seed.
func TestSimulationCatchesForgottenVote(t *testing.T) {
	if *flagSimSeed != 0 {
		var out strings.Builder
		opts := simulation.Options{}
		if *flagSimTrace {
			opts.Trace = &out
		}
		r := simulation.Run(brokenRaftKV(), *flagSimSeed, opts)
		t.Logf("%s", out.String())
		t.Logf("seed %d: hash %s, %v", r.Seed, r.Hash, r.Err)
		return
	}
	const bound = 60 // seeds; about one in four crash-storm seeds finds it
	found := sweepUntilFailure(t, brokenRaftKV(), bound)
	if found.Err == nil {
		t.Fatalf("%d seeds of a Raft that forgets its vote found no failure", bound)
	}
	if !strings.Contains(found.Err.Error(), "two leaders in term") {
		t.Fatalf("seed %d failed, but not with two leaders in a term: %v", found.Seed, found.Err)
	}
	t.Logf("seed %d: %v (replay: go test ./consensus -run %s -simulation.seed=%d -simulation.trace)", found.Seed, found.Err, t.Name(), found.Seed)
	again := simulation.Run(brokenRaftKV(), found.Seed, simulation.Options{})
	if again.Hash != found.Hash || again.Err == nil || again.Err.Error() != found.Err.Error() {
		t.Fatalf("seed %d did not replay: hash %s then %s, error %v then %v", found.Seed, found.Hash, again.Hash, found.Err, again.Err)
	}
}

// sweepUntilFailure runs seeds 1..bound, two at a time, and returns the
// failing run of the lowest seed (the zero Result if none failed).
func sweepUntilFailure(t *testing.T, sc simulation.Scenario, bound uint64) simulation.Result {
	t.Helper()
	var mu sync.Mutex
	var first simulation.Result
	next := uint64(1)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				seed := next
				next++
				done := seed > bound || (first.Err != nil && first.Seed < seed)
				mu.Unlock()
				if done {
					return
				}
				r := simulation.Run(sc, seed, simulation.Options{})
				mu.Lock()
				if r.Err != nil && (first.Err == nil || r.Seed < first.Seed) {
					first = r
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

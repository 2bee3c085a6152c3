package simulation

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/commit"
	"github.com/troupe-dev/troupe/membership"
)

var flagSeeds = flag.Int("simulation.seeds", 0, "TestSweep: seeds of every scenario of the catalog (0 skips it)")

// TestSameSeedSameTrace is the determinism contract, for every scenario
// (and every raft-kv profile): one seed, run twice, gives the same trace,
// byte for byte, whether or not the trace is written out; another seed
// gives another.
func TestSameSeedSameTrace(t *testing.T) {
	cases := []struct {
		name string
		sc   Scenario
	}{
		{"election", Election(ElectionConfig{Duration: 12 * time.Second})},
		{"election-skew", Election(ElectionConfig{Duration: 12 * time.Second, Skew: true})},
		{"jobs", Jobs(JobsConfig{Duration: 16 * time.Second})},
		{"mutex", Mutex(MutexConfig{Duration: 10 * time.Second})},
		{"mutex-restarts", Mutex(MutexConfig{Duration: 10 * time.Second, Restarts: true})},
		{"commit-textbook", Commit(CommitConfig{Duration: 10 * time.Second, Mode: commit.Textbook})},
		{"commit-consensus", Commit(CommitConfig{Duration: 10 * time.Second, Mode: commit.Consensus})},
	}
	for _, p := range RaftKVProfiles {
		cases = append(cases, struct {
			name string
			sc   Scenario
		}{"raft-kv-" + p, RaftKV(RaftKVConfig{Duration: 6 * time.Second, Profile: p})})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			a := Run(c.sc, 3, Options{Trace: &out})
			b := Run(c.sc, 3, Options{})
			other := Run(c.sc, 4, Options{})
			for _, r := range []Result{a, b, other} {
				if r.Err != nil && c.name != "mutex-restarts" { // that one finds a known bug (docs/simulation.md)
					t.Fatalf("seed %d: %v", r.Seed, r.Err)
				}
			}
			if (a.Err == nil) != (b.Err == nil) || a.Err != nil && a.Err.Error() != b.Err.Error() {
				t.Fatalf("seed 3 twice: %v, then %v", a.Err, b.Err)
			}
			if a.Hash != b.Hash || a.Lines != b.Lines || a.Events != b.Events {
				t.Fatalf("seed 3 twice: hash %s (%d lines) then %s (%d lines)", a.Hash, a.Lines, b.Hash, b.Lines)
			}
			if a.Hash == other.Hash {
				t.Fatalf("seeds 3 and 4 gave the same trace %s", a.Hash)
			}
			if got := uint64(strings.Count(out.String(), "\n")); got != a.Lines || a.Lines < 300 {
				t.Fatalf("the written trace has %d lines, the result says %d (want 300 or more)", got, a.Lines)
			}
			t.Logf("%d events, %d trace lines, %v virtual in %v: %s", a.Events, a.Lines, a.Virtual, a.Wall, a.CountsString())
		})
	}
}

// watcher is a protocol that asks membership for the view at Init.
type watcher struct {
	saw func(node actors.NodeName, v membership.View)
}

func (p *watcher) Name() actors.ProtocolName { return "watcher" }

func (p *watcher) Init(ctx *actors.Context) error {
	return actors.Request(ctx, membership.Name, membership.ViewRequest{}, 0,
		func(ctx *actors.Context, v membership.View, err error) error {
			if err == nil {
				p.saw(ctx.Node(), v)
			}
			return err
		})
}

// TestDetectorPublishesMembership: crashes, restarts and partitions reach
// every node as membership events after the detection delay, and a node
// that (re)starts learns the view at once.
func TestDetectorPublishesMembership(t *testing.T) {
	var events []string
	views := map[string]string{}
	sc := Scenario{Name: "detector", Nodes: 3, Duration: 5 * time.Second, Setup: func(w *World) error {
		w.Detector.Delay, w.Detector.Jitter = 500*time.Millisecond, 0
		record := func(node actors.NodeName, ev membership.Event) {
			if node == "node-1" {
				m := ev.Of()
				events = append(events, fmt.Sprintf("%v %s %s/%d", w.Sched.Elapsed(), m.State, m.Name, m.Generation))
			}
		}
		if err := Observe(w, func(node actors.NodeName, ev *membership.MemberFailed) { record(node, ev) }); err != nil {
			return err
		}
		if err := Observe(w, func(node actors.NodeName, ev *membership.MemberJoined) { record(node, ev) }); err != nil {
			return err
		}
		if err := w.Start(func() actors.Protocol {
			return &watcher{saw: func(node actors.NodeName, v membership.View) {
				views[fmt.Sprintf("%s@%v", node, w.Sched.Elapsed())] = joinNames(v.LiveNames())
			}}
		}); err != nil {
			return err
		}
		at := func(d time.Duration, f func()) { w.Sched.At(d, KindAction, "", "test", f) }
		at(time.Second, func() { _ = w.Crash("node-3") })
		at(2*time.Second, func() { _ = w.Restart("node-3") })
		at(3*time.Second, func() { w.Partition([]actors.NodeName{"node-1"}) })
		at(4*time.Second, func() { w.Heal() })
		return nil
	}}
	r := Run(sc, 1, Options{})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	want := []string{
		"1.5s failed node-3/1",
		"2.5s alive node-3/2",
		"3.5s failed node-2/1",
		"3.5s failed node-3/2",
		"4.5s alive node-2/1",
		"4.5s alive node-3/2",
	}
	slices.Sort(events) // events of one instant come in the seed's order
	if got := strings.Join(events, "; "); got != strings.Join(want, "; ") {
		t.Fatalf("node-1 saw\n  %s\nwant\n  %s", got, strings.Join(want, "; "))
	}
	if v := views["node-3@2s"]; v != "node-1,node-2,node-3" {
		t.Fatalf("node-3, restarted at 2s, saw live members %q at once; want all three (views: %v)", v, views)
	}
}

// TestFailureStopsTheRun: a checker's failure ends the run after the
// current event, unless KeepGoing; end-of-run checks run either way.
func TestFailureStopsTheRun(t *testing.T) {
	var mu sync.Mutex
	checked := 0
	sc := Scenario{Name: "fails", Nodes: 1, Duration: 10 * time.Second, Setup: func(w *World) error {
		w.Sched.At(time.Second, KindAction, "", "", func() { w.Fail(fmt.Errorf("broken on purpose")) })
		w.Check("end", func() error { mu.Lock(); checked++; mu.Unlock(); return nil })
		return nil
	}}
	r := Run(sc, 1, Options{})
	if r.Err == nil || !strings.Contains(r.Err.Error(), "at 1s: broken on purpose") || r.Virtual != time.Second {
		t.Fatalf("err %v after %v of virtual time; want the failure at 1s, and the run stopped there", r.Err, r.Virtual)
	}
	r = Run(sc, 1, Options{KeepGoing: true})
	if r.Err == nil || r.Virtual != 10*time.Second {
		t.Fatalf("KeepGoing: err %v after %v; want the failure and the whole 10s", r.Err, r.Virtual)
	}
	if checked != 2 {
		t.Fatalf("the end-of-run check ran %d times for 2 runs", checked)
	}
	if r := Run(Scenario{Name: "bad", Nodes: 0, Duration: time.Second, Setup: sc.Setup}, 1, Options{}); r.Err == nil ||
		!strings.Contains(r.Err.Error(), "at least 1") {
		t.Fatalf("a scenario without nodes ran: %v", r.Err)
	}
}

// TestNemesisEndsHealed: when the nemesis is over, every node runs again,
// the partition is healed and the network is the scenario's again.
func TestNemesisEndsHealed(t *testing.T) {
	sc := Scenario{Name: "nemesis", Nodes: 5, Duration: 4 * time.Second, Setup: func(w *World) error {
		w.Check("healed", func() error {
			if len(w.Up()) != 5 || w.groups != nil {
				return fmt.Errorf("up %v, partition %v", w.Up(), w.groups)
			}
			return nil
		})
		return w.Nemesis(Nemesis{Until: 3 * time.Second, Every: 20 * time.Millisecond,
			Crash: 1, Partition: 1, Burst: 1, Skew: 1, MaxSkew: time.Second,
			Downtime: [2]time.Duration{time.Second, 5 * time.Second}, PartitionFor: [2]time.Duration{time.Second, 5 * time.Second},
			BurstFor: [2]time.Duration{time.Second, 5 * time.Second}})
	}}
	r := Run(sc, 2, Options{})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if r.Counts["crashes"] < 2 || r.Counts["partitions"] < 5 || r.Counts["bursts"] < 5 {
		t.Fatalf("too few faults for 150 draws: %s", r.CountsString())
	}
	if err := (Nemesis{Every: time.Second}).validate(); err == nil {
		t.Fatal("a nemesis without Until and weights was accepted")
	}
}

// TestSweep runs -simulation.seeds seeds of every scenario of the catalog
// (cmd/sim does the same, in parallel).
func TestSweep(t *testing.T) {
	if *flagSeeds == 0 {
		t.Skip("give -simulation.seeds=N to sweep N seeds of every scenario")
	}
	for _, name := range Names() {
		sc, err := Lookup(name, Params{})
		if err != nil {
			t.Fatal(err)
		}
		for seed := uint64(1); seed <= uint64(*flagSeeds); seed++ {
			if r := Run(sc, seed, Options{}); r.Err != nil {
				t.Errorf("%s seed %d: %v (replay: go run ./cmd/sim %s --seed %d --trace)", name, seed, r.Err, name, seed)
			}
		}
	}
}

// Seeds where a node restarted with its clock stepped back behind its
// previous start went unheard by its peers (its reliable-delivery session
// was below the one they held), and where a raised session equalled an
// earlier incarnation's; each left nodes following different leaders.
func TestClockSteppedBackAcrossARestart(t *testing.T) {
	sc, err := Lookup("election", Params{Profile: "skew"})
	if err != nil {
		t.Fatal(err)
	}
	for _, seed := range []uint64{10, 13, 14, 33, 39, 56, 81, 178} {
		if r := Run(sc, seed, Options{}); r.Err != nil {
			t.Errorf("seed %d: %v (replay: go run ./cmd/sim election --profile skew --seed %d --trace)", seed, r.Err, seed)
		}
	}
}

// Seeds where Ricart–Agrawala let two nodes into the critical section, or
// never granted a request, when nodes crash and restart (docs/mutex.md).
func TestRicartAgrawalaSurvivesRestarts(t *testing.T) {
	sc, err := Lookup("mutex", Params{Profile: "restarts"})
	if err != nil {
		t.Fatal(err)
	}
	for _, seed := range []uint64{1, 2, 3, 5, 9, 10, 11, 44, 46} {
		if r := Run(sc, seed, Options{}); r.Err != nil {
			t.Errorf("seed %d: %v (replay: go run ./cmd/sim mutex --profile restarts --seed %d --trace)", seed, r.Err, seed)
		}
	}
}

func joinNames(names []actors.NodeName) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ",")
}

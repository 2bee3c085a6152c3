package simulation

import (
	"fmt"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/transport/sim"
)

// ElectionConfig shapes the election scenario. The zero value is the
// default of cmd/sim.
type ElectionConfig struct {
	Nodes    int           // default 5
	Duration time.Duration // virtual length; default 20s
	// Skew adds clock steps (±5s) to the nemesis. Off by default: reliable
	// delivery tells a node's incarnations apart by their start times, so
	// a node restarted with its clock stepped back behind its previous
	// start is not heard by its peers (docs/simulation.md, findings).
	Skew bool
	// Bully is the elector's configuration; zero timeouts become 150ms
	// (OKTimeout) and 400ms (CoordinatorTimeout), as in the election tests.
	Bully election.BullyConfig
}

// Election is the scenario "election": the Bully elector (package
// election) on the simulated failure detector, under crashes and
// restarts, partitions and bursts of loss, duplication and reordering.
//
// Checkers: on every node, the terms of the leaders it follows only grow
// within one incarnation (checked as they happen); and once the nemesis is
// over and the detector has caught up, every running node follows the
// highest running node (checked at the end). Terms are not compared at
// the end: LeaderChanged is published when the leader changes, so a
// leader that re-elected itself with a later term is not announced again.
// Under a partition each side elects its own leader, as Bully does, so
// "one leader per term" is not a property of Bully and is not checked.
func Election(cfg ElectionConfig) Scenario {
	cfg.Nodes = cmpOr(cfg.Nodes, 5)
	cfg.Duration = cmpOr(cfg.Duration, 20*time.Second)
	cfg.Bully.OKTimeout = cmpOr(cfg.Bully.OKTimeout, 150*time.Millisecond)
	cfg.Bully.CoordinatorTimeout = cmpOr(cfg.Bully.CoordinatorTimeout, 400*time.Millisecond)
	return Scenario{
		Name:        "election",
		Description: fmt.Sprintf("%d nodes electing with Bully on the simulated failure detector, crashes/partitions/bursts; checks growing terms and agreement on the highest live node", cfg.Nodes),
		Nodes:       cfg.Nodes,
		Duration:    cfg.Duration,
		Network:     sim.Faults{Latency: time.Millisecond, Jitter: 2 * time.Millisecond},
		Setup:       func(w *World) error { return setupElection(w, cfg) },
	}
}

func setupElection(w *World, cfg ElectionConfig) error {
	type belief struct {
		leader actors.NodeName
		term   uint64
		gen    uint64
	}
	beliefs := map[actors.NodeName]belief{}
	if err := Observe(w, func(node actors.NodeName, ev *election.LeaderChanged) {
		gen := w.Detector.Generation(node)
		prev, ok := beliefs[node]
		w.Note(fmt.Sprintf("election %s follows %q term %d", node, ev.Leader, ev.Term))
		if ok && prev.gen == gen && ev.Term < prev.term {
			w.Fail(fmt.Errorf("election: %s went from term %d (%s) back to term %d (%s)", node, prev.term, prev.leader, ev.Term, ev.Leader))
		}
		if ev.Leader != "" {
			w.Count("election_leader_changes", 1)
		}
		beliefs[node] = belief{leader: ev.Leader, term: ev.Term, gen: gen}
	}); err != nil {
		return err
	}
	ef, err := election.New(election.Config{Bully: cfg.Bully})
	if err != nil {
		return err
	}
	if err := w.Start(ef); err != nil {
		return err
	}

	n := Nemesis{
		Until: cfg.Duration - 8*time.Second, Every: w.LogUniform(200*time.Millisecond, 2*time.Second),
		Crash: 4, Partition: 3, Burst: 2,
		Downtime:     [2]time.Duration{time.Millisecond, 3 * time.Second},
		PartitionFor: [2]time.Duration{100 * time.Millisecond, 3 * time.Second},
		BurstFor:     [2]time.Duration{200 * time.Millisecond, 2 * time.Second},
		BurstFaults:  sim.Faults{Latency: time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.2, Duplicate: 0.1, Reorder: 0.2},
		MaxSkew:      5 * time.Second,
		MaxDown:      cfg.Nodes - 1,
		Victim: func() actors.NodeName { // the leader most nodes follow (node order breaks ties)
			count := map[actors.NodeName]int{}
			var best actors.NodeName
			for _, name := range w.Names() {
				b := beliefs[name]
				if count[b.leader]++; b.leader != "" && count[b.leader] > count[best] {
					best = b.leader
				}
			}
			return best
		},
	}
	if cfg.Skew {
		n.Skew = 1
	}
	if n.Until < time.Second {
		return fmt.Errorf("election: Duration %v leaves no time for faults and recovery; use 10s or more", cfg.Duration)
	}
	w.Count("profile_nemesis_every_ms", int64(n.Every/time.Millisecond))
	w.Check("agreement on the highest live node", func() error {
		if w.Sched.Halted() || w.Sched.Elapsed() < cfg.Duration {
			return nil // stopped early: another checker failed
		}
		up := w.Up() // in node order: node-1 … node-n, so the last ranks highest
		want := up[len(up)-1]
		for _, name := range up {
			if b := beliefs[name]; b.gen != w.Detector.Generation(name) || b.leader != want {
				return fmt.Errorf("%s follows %q (incarnation %d of %d); every running node should follow %s", name, b.leader, b.gen, w.Detector.Generation(name), want)
			}
		}
		return nil
	})
	return w.Nemesis(n)
}

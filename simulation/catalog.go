package simulation

import (
	"fmt"

	"slices"
	"sort"
	"time"

	"github.com/troupe-dev/troupe/commit"
)

// Params are the knobs cmd/sim passes to a scenario; zero values keep the
// scenario's defaults.
type Params struct {
	Nodes    int
	Duration time.Duration
	// Profile picks a fault profile where the scenario has several
	// (raft-kv: RaftKVProfiles); "" lets each seed draw one.
	Profile string
}

// entry makes a scenario from Params.
type entry struct {
	describe string
	make     func(Params) (Scenario, error)
}

var catalog = map[string]entry{
	"raft-kv": {
		describe: "5-node Raft group (consensus) with its key-value store under crashes, partitions, bursts and clock skew; one leader per term, linearizability (porcupine), availability after the faults",
		make: func(p Params) (Scenario, error) {
			if p.Profile != "" && !slices.Contains(RaftKVProfiles, p.Profile) {
				return Scenario{}, fmt.Errorf("simulation: raft-kv has no profile %q; valid: %v", p.Profile, RaftKVProfiles)
			}
			return RaftKV(RaftKVConfig{Nodes: p.Nodes, Duration: p.Duration, Profile: p.Profile}), nil
		},
	},
	"election": {
		describe: "5 nodes electing with Bully on the simulated failure detector under crashes, partitions and bursts (--profile skew: and clock steps); terms only grow, agreement on the highest live node",
		make: func(p Params) (Scenario, error) {
			if p.Profile != "" && p.Profile != "skew" {
				return Scenario{}, fmt.Errorf("simulation: election has one profile, skew (clock steps), not %q", p.Profile)
			}
			return Election(ElectionConfig{Nodes: p.Nodes, Duration: p.Duration, Skew: p.Profile == "skew"}), nil
		},
	},
	"jobs": {
		describe: "5 nodes running distributed Starlark jobs (Bully, simulated failure detector) under crashes, partitions and bursts; results equal a single-node run, jobs finish",
		make: func(p Params) (Scenario, error) {
			if p.Profile != "" {
				return Scenario{}, fmt.Errorf("simulation: jobs has no profiles (got %q)", p.Profile)
			}
			return Jobs(JobsConfig{Nodes: p.Nodes, Duration: p.Duration}), nil
		},
	},
	"mutex": {
		describe: "5 nodes taking turns in a Ricart–Agrawala critical section (mutex) under crash-stop failures (--profile restarts: crash-recovery) and bursts; at most one holder at a time, every request granted",
		make: func(p Params) (Scenario, error) {
			if p.Profile != "" && !slices.Contains(MutexProfiles, p.Profile) {
				return Scenario{}, fmt.Errorf("simulation: mutex has no profile %q; valid: %v", p.Profile, MutexProfiles)
			}
			return Mutex(MutexConfig{Nodes: p.Nodes, Duration: p.Duration, Restarts: p.Profile == "restarts"}), nil
		},
	},
	"commit": {
		describe: "5 nodes running two-phase commit (commit) over simulated ledgers, textbook or consensus mode per seed (--profile), crashes/partitions/bursts/skew; atomicity, nobody left in doubt",
		make: func(p Params) (Scenario, error) {
			if p.Profile != "" && !slices.Contains(CommitProfiles, p.Profile) {
				return Scenario{}, fmt.Errorf("simulation: commit has no profile %q; valid: %v", p.Profile, CommitProfiles)
			}
			return Commit(CommitConfig{Nodes: p.Nodes, Duration: p.Duration, Mode: commit.Mode(p.Profile)}), nil
		},
	},
}

// Names lists the scenarios of the catalog, sorted.
func Names() []string {
	names := make([]string, 0, len(catalog))
	for n := range catalog {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Describe is a scenario's one-line description ("" if unknown).
func Describe(name string) string { return catalog[name].describe }

// Lookup makes the named scenario of the catalog with p.
func Lookup(name string, p Params) (Scenario, error) {
	e, ok := catalog[name]
	if !ok {
		return Scenario{}, fmt.Errorf("simulation: no scenario %q; valid: %v", name, Names())
	}
	if p.Nodes < 0 || p.Duration < 0 {
		return Scenario{}, fmt.Errorf("simulation: nodes (%d) and duration (%v) must not be negative", p.Nodes, p.Duration)
	}
	return e.make(p)
}

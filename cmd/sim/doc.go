// Command sim runs Troupe's deterministic simulations: whole clusters on
// virtual time, faults from a seed, checkers on every run (package
// simulation). One seed replays one run, event for event.
//
//	go run ./cmd/sim list                      # the scenarios
//	go run ./cmd/sim raft-kv --seeds 1000      # seeds 1..1000 in parallel; failures with their seeds
//	go run ./cmd/sim raft-kv --seed 17 --trace # replay seed 17 and print its trace
//
// A sweep prints one line per failing seed and, last, its figures as
// space-separated name=value pairs: scenario, seeds, failures,
// virtual_s (virtual time simulated, all seeds), wall_s,
// speedup_vs_realtime (virtual_s / wall_s), run_speedup_median (the median
// of each run's own virtual/wall), events and parallel. It exits with
// status 1 when a seed failed.
package main

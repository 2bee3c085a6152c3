// Command bench measures Troupe's building blocks, one subcommand per
// scenario. Each prints a table and, as its last line, the figures as
// space-separated name=value pairs for scripts to read.
//
//	go run ./cmd/bench membership --nodes 5,25,100
//	go run ./cmd/bench failover --nodes 5 --trials 20
//	go run ./cmd/bench kv --nodes 3
//	go run ./cmd/bench jobs
//	go run ./cmd/bench speedup --cpus 0.35
//
// kv ends with the leader failover (failover_p99_ms) and the follower
// restart (restart_ready_p50_ms, restart_ready_p99_ms: crash a follower,
// write while it is down, restart it from its data dir, time until it
// serves a linearizable read); --failovers and --restarts set the rounds,
// 0 skips them. `bench kv --help` says how close the in-process crash
// comes to kill -9; docs/consensus.md has the figures.
package main

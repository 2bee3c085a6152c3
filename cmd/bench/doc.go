// Command bench measures Troupe's building blocks, one subcommand per
// scenario. Each prints a table and, as its last line, the figures as
// space-separated name=value pairs for scripts to read.
//
//	go run ./cmd/bench membership --nodes 5,25,100
//	go run ./cmd/bench failover --nodes 5 --trials 20
//	go run ./cmd/bench kv --nodes 3
//	go run ./cmd/bench jobs
//	go run ./cmd/bench speedup --cpus 0.35
package main

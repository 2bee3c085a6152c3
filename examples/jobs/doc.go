// Package examplejobs holds the sample jobs of the jobs protocol and a
// stand-in for the data service the sample job queries.
//
// # Usage
//
// [Scores] fetches a catalogue from a [DataService] once (in split), scores
// every item (run) and keeps the best (merge); [CPU] counts primes, every
// part costing about the same. Submit them to any node:
//
//	node job submit --node http://127.0.0.1:8080 examples/jobs/cpu.star --input in.json --wait
//
// `go run ./cmd/node demo` runs Scores on five in-process nodes.
//
// # Concurrency
//
// DataService serves requests concurrently; the catalogue is read-only.
//
// # Testing
//
// The examples run the jobs on one node (jobs.RunLocal) and check the
// output.
package examplejobs

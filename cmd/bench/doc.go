// Command bench measures Troupe's building blocks, one subcommand per
// scenario. Each prints a table and, as its last line, the figures as
// space-separated name=value pairs for scripts to read.
//
//	go run ./cmd/bench membership --nodes 5,25,100
//	go run ./cmd/bench failover --nodes 5 --trials 20
//	go run ./cmd/bench kv --nodes 3
//	go run ./cmd/bench kv --vs-etcd
//	go run ./cmd/bench jobs
//	go run ./cmd/bench speedup --cpus 0.35
//	go run ./cmd/bench channels
//
// kv ends with the leader failover (failover_p99_ms) and the follower
// restart (restart_ready_p50_ms, restart_ready_p99_ms: crash a follower,
// write while it is down, restart it from its data dir, time until it
// serves a linearizable read); --failovers and --restarts set the rounds,
// 0 skips them. `bench kv --help` says how close the in-process crash
// comes to kill -9; docs/consensus.md has the figures.
//
// kv --vs-etcd runs a 3-member etcd (the etcd binary on PATH) and a 3-node
// Troupe group (`node run`, built from ./cmd/node) as processes on
// loopback, drives both in turn with one generator and ends with
// vs_etcd_put_c64, vs_etcd_get_c64 and vs_etcd_put_c1_p50 (Troupe/etcd);
// docs/consensus.md, "Side by side with etcd", says what it measures.
// Troupe's client speaks HTTP/1.1, or HTTP/2 in clear text with --h2c.
//
// channels drives the stream, datagram and gossip channels of one
// protocol on loopback, then three broadcasting protocols (flooding on
// the stream, Plumtree on datagrams, a rumor on gossip), and ends with
// each one's delivered messages per second and bytes on the wire per
// delivered message (docs/channels.md).
package main

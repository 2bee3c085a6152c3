// Package chaos holds two suites that break a real cluster the ways real
// machines break and check that it recovers with nothing lost.
//
// The loopback suite (TestLoopbackChaos, run by go test ./...) builds
// cmd/node once and starts three, then five, `node run` processes on
// loopback as README.md's recipe does (a raft group of all of them, the
// raft elector, node-1 without --join). Five clients put, compare-and-set
// and get four keys through random nodes over /v1/kv while a nemesis, in
// turn, kills a node with SIGKILL and restarts it from its data dir,
// pauses one with SIGSTOP for 2–4 s, and kills every node at once and
// restarts them all, targeting the leader (GET /v1/leader) half of the
// time. porcupine checks the history linearizable (a write answered 504
// unknown, 500 or not at all enters with an infinite return time; a 503 or
// a refused connection is not applied), and every acknowledged write must
// be the final value of its key or have been overwritten by a write not
// over before it began. The seed is -args -chaos.seed=N; it skips under
// -short and -race.
//
// The Docker suite builds the node image, runs the five-node cluster of
// compose.yaml and breaks it with docker kill, pause and network
// disconnect.
//
// # Usage
//
//	go test -run TestLoopbackChaos -v ./chaos/       # the loopback suite
//	go test -tags docker -v -timeout 30m ./chaos/    # the Docker suite
//
// The Docker tests are behind the docker build tag, so go test ./... does
// not build images; under the tag the loopback suite, which go test ./...
// has run, is left out. With the tag and no Docker daemon answering, the
// Docker tests skip and say why. .ci/run runs them when a daemon answers. The cluster runs
// as compose project troupe-chaos (TROUPE_CHAOS_PROJECT), beside any other
// stack on the host: on a subnet of 10.213.0.0/16 that no Docker network
// overlaps (TROUPE_SUBNET, through compose.subnet.yaml: the partition
// scenario reconnects a container with its own address, which needs a
// fixed subnet) and with node-i's API on host port <base>i for the first
// base from 1808 whose five ports are free (TROUPE_PORT_BASE). It is
// removed at the end unless TROUPE_CHAOS_KEEP=1.
//
// # Docker scenarios
//
//   - leader killed mid-job: docker kill of the leader's container while a
//     job runs; the job ends succeeded with the right result.
//   - leader partitioned: the leader's container is disconnected from the
//     network; the majority elects a leader and accepts writes; after
//     reconnection every node sees five members alive and one leader.
//   - rolling restart: every container restarted one by one (SIGTERM)
//     while clients read and write the key-value store through every node;
//     the history is checked linearizable with porcupine and every
//     acknowledged write is read back.
//   - paused node: docker pause makes the others suspect it (or declare
//     it failed); after unpause every node sees it alive again.
//
// Each scenario logs its outcome and timings.
package chaos

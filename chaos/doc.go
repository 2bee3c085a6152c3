// Package chaos is the Docker chaos suite: it builds the node image, runs
// the five-node cluster of compose.yaml and breaks it the ways real
// machines and networks break, checking after each that the cluster
// recovers with nothing lost.
//
// # Usage
//
//	go test -tags docker -v -timeout 30m ./chaos/
//
// The tests are behind the docker build tag, so go test ./... does not
// build images. With the tag and no Docker daemon answering, they skip
// and say why. .ci/run runs them when a daemon answers. The cluster runs
// as compose project troupe-chaos; it is removed at the end unless
// TROUPE_CHAOS_KEEP=1.
//
// # Scenarios
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

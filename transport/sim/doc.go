// Package sim is an in-process network for tests: a [Hub] that carries
// Troupe envelopes between attached nodes, and hashicorp/memberlist traffic
// between [MemberlistTransport]s, through latency, jitter, loss,
// duplication, reordering and partitions drawn from a seed, and counts every
// message and byte ([Hub.Stats]).
//
// # Usage
//
// A node attaches its actors endpoint with [Hub.Attach] (package actors does
// this) and, for SWIM membership, asks for a memberlist transport under the
// same name:
//
//	tr, err := hub.Memberlist("node-1")
//	cfg := memberlist.DefaultLANConfig()
//	cfg.Name = "node-1"
//	cfg.Transport = tr
//	ml, err := memberlist.Create(cfg)
//	seed, _ := hub.MemberlistAddr("node-0")
//	_, err = ml.Join([]string{seed})
//
// Faults are keyed by node name and apply to both kinds of traffic:
// [Hub.SetFaults], [Hub.SetLinkFaults], [Hub.Partition], [Hub.Block],
// [Hub.Heal].
//
// # Virtual time
//
// With [Config.Scheduler] set, the hub runs on a simulation's virtual time
// (package simulation): it starts no goroutine, reads the time from the
// Scheduler and delivers every envelope, also one without delay, from a
// callback it arms there, never from inside Send. [Config.Observe] reports
// the [Fate] of every envelope, for a simulation's trace. memberlist
// transports are not meant for that mode: memberlist's own timers run on
// the wall clock.
//
// # Concurrency
//
// The hub and its transports are safe for concurrent use. The hub runs one
// goroutine, its scheduler, which [Hub.Close] stops and waits for; Close also
// closes every endpoint and shuts every memberlist transport down. (None in
// Scheduler mode.)
//
// # Testing
//
// The same seed and the same sequence of sends give a single sender's
// messages and packets the same fates (TestSameSeedSameDeliveryOrder,
// TestMemberlistSameSeedSamePacketFates); on virtual time, so does the whole
// delivery order (TestSchedulerSameSeedSameFates). swim_test.go runs real
// memberlist clusters over the hub.
package sim

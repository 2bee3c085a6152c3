package clustertest

import (
	"time"

	"github.com/troupe-dev/troupe/membership"
)

// SimMembership is SWIM for tests on the sim network (give it to
// cluster.Membership): memberlist's LAN profile — three indirect probes,
// four retransmits, suspicion 4·log10(N) probe intervals — at twenty times
// its speed, which the sim's zero-latency links allow. It detects a failure
// among 5 nodes in well under a second and stays free of false failures at
// 10% loss.
func SimMembership() membership.Config {
	return membership.Config{
		Preset: membership.PresetLAN,
		Timing: membership.Timing{
			ProbeInterval:     50 * time.Millisecond,
			ProbeTimeout:      25 * time.Millisecond,
			GossipInterval:    10 * time.Millisecond,
			PushPullInterval:  400 * time.Millisecond,
			TCPTimeout:        400 * time.Millisecond,
			ReconnectInterval: 100 * time.Millisecond,
		},
	}
}

// SteadySimMembership is SimMembership at memberlist's LAN ratios and a
// fifth of its periods (probe every 200 ms, 100 ms to answer): for tests
// whose claim needs no false failure, such as "no live node is declared
// failed at 10% loss" or "a part runs at most once more", on a host that
// may starve a node for longer than SimMembership's 25 ms probe timeout
// (go test ./... on 2 cores, the race detector). Crashes are detected in
// about a second instead of a few hundred milliseconds.
func SteadySimMembership() membership.Config {
	c := SimMembership()
	c.Timing.ProbeInterval, c.Timing.ProbeTimeout, c.Timing.GossipInterval = 200*time.Millisecond, 100*time.Millisecond, 40*time.Millisecond
	return c
}

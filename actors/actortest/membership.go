package actortest

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

package main

import (
	"fmt"
	"time"
)

// waitUntil polls cond until it holds or timeout passes: the demo and
// broadcast commands wait for their clusters with it. (The test kit,
// actortest, has the same wait; the binary does not link the test kit, nor
// package testing.)
func waitUntil(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %v", timeout)
		}
		<-tick.C
	}
	return nil
}

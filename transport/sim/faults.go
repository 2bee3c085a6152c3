package sim

import (
	"fmt"
	"time"
)

// Faults describes what the hub does to the messages of one direction of a
// link. The zero value is a benign network: FIFO, no delay, nothing lost.
type Faults struct {
	Latency time.Duration // fixed delay of every message
	Jitter  time.Duration // extra delay, uniform in [0, Jitter); never reorders a link
	Loss    float64       // probability that a message is dropped, in [0, 1]
	// Duplicate is the probability that a message is delivered twice, in [0, 1].
	Duplicate float64
	// Reorder is the probability that a message is held back and overtaken
	// by the next 1..ReorderDepth messages of its link, in [0, 1].
	Reorder      float64
	ReorderDepth int // how many later messages may overtake a held one; 0 means 3
}

// Validate reports the first field out of range.
func (f Faults) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"Loss", f.Loss}, {"Duplicate", f.Duplicate}, {"Reorder", f.Reorder}} {
		if p.v < 0 || p.v > 1 || p.v != p.v {
			return fmt.Errorf("sim: Faults.%s is %v; a probability must be in [0, 1]", p.name, p.v)
		}
	}
	if f.Latency < 0 || f.Jitter < 0 {
		return fmt.Errorf("sim: Faults.Latency (%v) and Jitter (%v) must not be negative", f.Latency, f.Jitter)
	}
	if f.ReorderDepth < 0 {
		return fmt.Errorf("sim: Faults.ReorderDepth is %d; it must be 0 (default 3) or more", f.ReorderDepth)
	}
	return nil
}

func (f Faults) depth() int {
	if f.ReorderDepth == 0 {
		return 3
	}
	return f.ReorderDepth
}

// benign tells whether messages pass straight through.
func (f Faults) benign() bool {
	return f.Latency == 0 && f.Jitter == 0 && f.Loss == 0 && f.Duplicate == 0 && f.Reorder == 0
}

package telemetry

import (
	"runtime"
	"runtime/metrics"
	"time"
)

// Probe measures the host a node runs on. Sample is called on the
// telemetry protocol's goroutine once per status interval: it must be quick
// and must not block.
type Probe interface {
	Sample() HostSample
}

// HostSample is what a Probe measured. The figures of the process are the
// process's: nodes that share a process (an in-process cluster) report the
// same ones.
type HostSample struct {
	// CPUTime is the user and system CPU the process used since it
	// started; 0 when unknown.
	CPUTime     time.Duration
	NumCPU      int
	HeapBytes   uint64 // live heap objects
	MemoryBytes uint64 // all memory the Go runtime holds from the OS (mapped, not all resident)
	// RSSBytes is the process's resident set size, what the operating
	// system (ps, docker stats) counts as its memory; 0 when not measured
	// (off Linux).
	RSSBytes   uint64
	Goroutines int
	// DiskFree and DiskTotal are the disk's bytes available to the process
	// and its size; both 0 when not measured.
	DiskFree, DiskTotal uint64
}

// SystemProbe measures this process with runtime/metrics and, on Linux and
// macOS, the CPU time from getrusage and the disk holding diskPath from
// statfs ("" measures no disk); on Linux the resident set size from
// /proc/self/statm.
func SystemProbe(diskPath string) Probe { return &systemProbe{disk: diskPath} }

type systemProbe struct{ disk string }

var runtimeMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/total:bytes",
	"/sched/goroutines:goroutines",
}

func (p *systemProbe) Sample() HostSample {
	samples := make([]metrics.Sample, len(runtimeMetrics))
	for i, name := range runtimeMetrics {
		samples[i].Name = name
	}
	metrics.Read(samples)
	s := HostSample{NumCPU: runtime.NumCPU(), CPUTime: cpuTime(), RSSBytes: rssBytes()}
	value := func(i int) uint64 {
		if samples[i].Value.Kind() == metrics.KindUint64 {
			return samples[i].Value.Uint64()
		}
		return 0
	}
	s.HeapBytes, s.MemoryBytes, s.Goroutines = value(0), value(1), int(value(2))
	if p.disk != "" {
		s.DiskFree, s.DiskTotal = diskUsage(p.disk)
	}
	return s
}

//go:build !linux && !darwin

package telemetry

import "time"

func cpuTime() time.Duration                { return 0 }
func diskUsage(string) (free, total uint64) { return 0, 0 }

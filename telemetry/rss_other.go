//go:build !linux

package telemetry

// rssBytes is not measured off Linux.
func rssBytes() uint64 { return 0 }

//go:build !linux

package simulation

// callerID names the caller: its goroutine's id (no cheap thread id here).
func callerID() uint64 { return goid() }

package simulation

import "syscall"

// callerID names the caller: its OS thread's id. A simulation's goroutine
// is locked to its thread (bindCryptoRand), so no other goroutine runs
// there while it is bound.
func callerID() uint64 { return uint64(syscall.Gettid()) }

package mutex

import "errors"

// Errors of the mutex package. Each is wrapped with detail; test with
// [errors.Is]. The lease lock service's errors are in locks.go
// (ErrLockHeld, ErrUnknownLock, ErrWrongToken, ErrInvalidLockName,
// ErrInvalidTTL), the raft group's in package consensus; [HTTPHandler] maps
// them to statuses.
var (
	// ErrInvalidConfig: a Config field out of range.
	ErrInvalidConfig = errors.New("mutex: invalid configuration")
	// ErrNotHolder: a Release with a grant that does not hold the critical
	// section (released already, withdrawn, or lost in a restart of the
	// protocol).
	ErrNotHolder = errors.New("mutex: not the holder of the critical section")
	// ErrWithdrawn: the Enter was withdrawn before it was granted.
	ErrWithdrawn = errors.New("mutex: request withdrawn")
)

// Package fencing is a store guarded by fencing tokens, the other half of
// a lease lock (mutex.Leases): a holder whose lease ran out — paused,
// partitioned, or crashed and restarted — may still believe it holds the
// lock, so the store itself refuses a write whose token is older than one
// it has already seen for that key.
//
// # Usage
//
//	lease, _ := leases.Acquire(ctx, "orders", 10*time.Second, "worker-3")
//	err := store.Write("orders", value, lease.Token) // ErrStaleToken once a later holder wrote
//
// # Concurrency
//
// A Store is safe for concurrent use.
//
// # Testing
//
// The example and the tests of package mutex run a raft group on the
// simulated network, let a holder crash, and check that its write is
// refused after the next holder's.
package fencing

import (
	"errors"
	"fmt"
	"sync"
)

// ErrStaleToken: the write's token is older than one the store has seen
// for the key: a later holder has the lock.
var ErrStaleToken = errors.New("fencing: stale token")

// Store is a key-value store that remembers, per key, the highest token a
// write carried, and refuses writes with lower ones. Equal tokens pass: a
// holder writes as often as it likes while it holds the lock.
type Store struct {
	mu      sync.Mutex
	highest map[string]uint64
	values  map[string]string
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{highest: map[string]uint64{}, values: map[string]string{}}
}

// Write sets key to value if token is at least the highest token seen for
// key; otherwise it fails with ErrStaleToken.
func (s *Store) Write(key, value string, token uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.highest[key]; token < h {
		return fmt.Errorf("%w: token %d is older than %d, which a later holder of %q wrote with", ErrStaleToken, token, h, key)
	}
	s.highest[key] = token
	s.values[key] = value
	return nil
}

// Read returns the value of key.
func (s *Store) Read(key string) (value string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	value, ok = s.values[key]
	return value, ok
}

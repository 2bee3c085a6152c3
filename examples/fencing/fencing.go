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

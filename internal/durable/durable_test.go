package durable_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/troupe-dev/troupe/internal/durable"
)

var errCorrupt = errors.New("corrupt")

func TestSealedValuesRefuseDamage(t *testing.T) {
	v := durable.Seal([]byte("vote for n2"))
	if b, err := durable.Unseal(errCorrupt, "the vote", v); err != nil || string(b) != "vote for n2" {
		t.Fatalf("Unseal: %q, %v", b, err)
	}
	v[6] ^= 1
	if _, err := durable.Unseal(errCorrupt, "the vote", v); !errors.Is(err, errCorrupt) {
		t.Errorf("a flipped bit: %v, want the corruption error", err)
	}
	if _, err := durable.Unseal(errCorrupt, "the vote", v[:3]); !errors.Is(err, errCorrupt) {
		t.Errorf("3 bytes: %v, want the corruption error", err)
	}
}

func TestOpenBoltRefusesGarbageAndClosesOnError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.db"), []byte("not a bbolt file at all, not even close"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := durable.OpenBolt("test", dir, "x.db", true, errCorrupt, func(*bolt.DB) error { return nil }); !errors.Is(err, errCorrupt) {
		t.Fatalf("garbage file: %v, want the corruption error", err)
	}
	prepErr := errors.New("prepare failed")
	if _, err := durable.OpenBolt("test", dir, "y.db", true, errCorrupt, func(*bolt.DB) error { return prepErr }); !errors.Is(err, prepErr) {
		t.Fatalf("prepare's error: %v", err)
	}
	// Closed after the failed prepare: opening again does not wait for the lock.
	db, err := durable.OpenBolt("test", dir, "y.db", true, errCorrupt, func(*bolt.DB) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	if _, err := durable.OpenBolt("test", dir, "z.db", true, errCorrupt, func(*bolt.DB) error { panic("a fault while loading") }); !errors.Is(err, errCorrupt) {
		t.Fatalf("a panic in prepare: %v, want the corruption error", err)
	}
}

package durable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// OpenBolt opens (or creates) dir/name and runs prepare on it (creating
// buckets, loading and checking the contents). pkg prefixes the errors it
// makes; damage anywhere, in bbolt's own pages (bbolt panics on some) or
// past the end of a truncated file (a fault through mmap), while opening
// or preparing, is an error wrapping corrupt. On any error the file is
// closed again.
func OpenBolt(pkg, dir, name string, noSync bool, corrupt error, prepare func(db *bolt.DB) error) (db *bolt.DB, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("%s: creating the data dir: %w", pkg, err)
	}
	path := filepath.Join(dir, name)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, fmt.Errorf("%w: %s: %v", corrupt, path, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        2 * time.Second, // the file lock: another process (or incarnation) holds it
		NoSync:         noSync,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("%s: %s is locked by another process: %w", pkg, path, err)
		}
		return nil, fmt.Errorf("%w: opening %s: %v", corrupt, path, err)
	}
	if err := prepare(db); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Seal returns b behind its CRC-32C (4 bytes, big endian).
func Seal(b []byte) []byte {
	out := make([]byte, 4+len(b))
	copy(out[4:], b)
	SealInPlace(out)
	return out
}

// SealInPlace writes into b's first 4 bytes the CRC-32C of the rest.
func SealInPlace(b []byte) {
	binary.BigEndian.PutUint32(b, crc32.Checksum(b[4:], crcTable))
}

// Unseal checks a sealed value and returns its bytes; what names it in the
// error, which wraps corrupt.
func Unseal(corrupt error, what string, v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, fmt.Errorf("%w: %s is %d bytes, shorter than its checksum", corrupt, what, len(v))
	}
	b := v[4:]
	if got, want := crc32.Checksum(b, crcTable), binary.BigEndian.Uint32(v); got != want {
		return nil, fmt.Errorf("%w: %s fails its checksum (crc32c %08x, stored %08x)", corrupt, what, got, want)
	}
	return b, nil
}

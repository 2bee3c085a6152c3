package durable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Store is one durable store in a node's data dir: a bbolt file, and the
// marker file beside it (Marker) that records the store was made there.
type Store struct {
	Pkg    string // prefixes the errors: "consensus", "commit"
	Dir    string // the node's data dir
	Name   string // the bbolt file in Dir: "raft.db"
	NoSync bool   // bbolt's NoSync; also skips the fsyncs of the store's creation
	// Corrupt is wrapped by the errors about damaged contents, Missing by
	// the errors about a file of the store that is missing or empty.
	Corrupt, Missing error
	// Recovery ends every Missing error: what an operator can do (start
	// the node over, restore a backup).
	Recovery string
	// Traces returns the store's other files that hold data (the raft
	// log), or is nil. While any is there the bbolt file must be too.
	Traces func() ([]string, error)
}

// How says what Open found.
type How int

const (
	Existing How = iota // the store, as it was
	Created             // no store: Open made a new one
	Adopted             // a store of an earlier version, without a creation record: Open recorded it
)

var (
	bucketDurable = []byte("durable")
	keyCreated    = []byte("created")
)

// Marker is the name of the marker file of the bbolt file name.
func Marker(name string) string { return name + ".created" }

// Open opens the store and runs prepare on it (creating buckets, loading
// and checking the contents). It keeps one rule: a store is made once,
// and a store that was made must be there. So:
//
//   - with no bbolt file, no marker and no traces, it makes the store: a
//     bbolt file holding a creation record (written under a temporary
//     name, then renamed), then the marker;
//   - a bbolt file missing while its marker or a trace is there, or empty
//     (0 bytes, which bbolt would silently make new), or holding no
//     creation record (emptied or replaced; a file of an earlier version,
//     with data and no marker, is adopted instead), is an error wrapping
//     s.Missing;
//   - a missing marker beside a bbolt file with its record is written
//     again (a crash can come between the two).
//
// Damage anywhere, in bbolt's own pages (bbolt panics on some) or past the
// end of a truncated file (a fault through mmap), while opening or
// preparing, is an error wrapping s.Corrupt. On any error the file is
// closed again.
func Open(s Store, prepare func(db *bolt.DB) error) (db *bolt.DB, how How, err error) {
	if err := os.MkdirAll(s.Dir, 0o750); err != nil {
		return nil, 0, fmt.Errorf("%s: creating the data dir: %w", s.Pkg, err)
	}
	path, marker := filepath.Join(s.Dir, s.Name), filepath.Join(s.Dir, Marker(s.Name))
	hasMarker, err := exists(marker)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", s.Pkg, err)
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if hasMarker {
			return nil, 0, s.missing("%s is missing, but %s records that it was made there", path, marker)
		}
		if s.Traces != nil {
			traces, err := s.Traces()
			if err != nil {
				return nil, 0, err
			}
			if len(traces) > 0 {
				return nil, 0, s.missing("%s is missing, but the files it goes with are there (%s)", path, strings.Join(traces, ", "))
			}
		}
		if err := s.create(path); err != nil {
			return nil, 0, err
		}
		how = Created
	case err != nil:
		return nil, 0, fmt.Errorf("%s: %w", s.Pkg, err)
	case fi.Size() == 0:
		return nil, 0, s.missing("%s is empty (0 bytes): it was truncated", path)
	}

	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, fmt.Errorf("%w: %s: %v", s.Corrupt, path, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        2 * time.Second, // the file lock: another process (or incarnation) holds it
		NoSync:         s.NoSync,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, 0, fmt.Errorf("%s: %s is locked by another process: %w", s.Pkg, path, err)
		}
		return nil, 0, fmt.Errorf("%w: opening %s: %v", s.Corrupt, path, err)
	}
	adopted, err := s.check(db, path, hasMarker)
	if err == nil && adopted {
		how = Adopted
	}
	if err == nil && !hasMarker {
		err = s.writeMarker(marker)
	}
	if err == nil {
		err = prepare(db)
	}
	if err != nil {
		_ = db.Close()
		return nil, 0, err
	}
	return db, how, nil
}

// check finds the creation record in db, or adopts a file of an earlier
// version (data, no record, no marker) by writing it.
func (s Store) check(db *bolt.DB, path string, hasMarker bool) (adopted bool, err error) {
	var record []byte
	buckets := 0
	err = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketDurable); b != nil {
			record = b.Get(keyCreated)
		}
		return tx.ForEach(func([]byte, *bolt.Bucket) error { buckets++; return nil })
	})
	if err != nil {
		return false, fmt.Errorf("%w: reading %s: %v", s.Corrupt, path, err)
	}
	switch {
	case record != nil:
		name, err := Unseal(s.Corrupt, "the creation record", record)
		if err != nil {
			return false, fmt.Errorf("%s: %w", path, err)
		}
		if string(name) != s.Name {
			return false, s.missing("%s holds the creation record of %q, not of %q: it was replaced", path, name, s.Name)
		}
		return false, nil
	case hasMarker:
		return false, s.missing("%s holds no creation record, but %s records that it was made there: it was emptied or replaced",
			path, filepath.Join(s.Dir, Marker(s.Name)))
	case buckets == 0:
		return false, s.missing("%s holds nothing (no creation record, no data): it was emptied or replaced", path)
	}
	db.NoSync = s.NoSync
	if err := db.Update(s.putRecord); err != nil {
		return false, fmt.Errorf("%s: recording %s: %w", s.Pkg, path, err)
	}
	return true, nil
}

func (s Store) putRecord(tx *bolt.Tx) error {
	b, err := tx.CreateBucketIfNotExists(bucketDurable)
	if err != nil {
		return err
	}
	return b.Put(keyCreated, Seal([]byte(s.Name)))
}

// create makes the bbolt file with its creation record under a temporary
// name and renames it into place: the file is there only once recorded.
func (s Store) create(path string) error {
	tmp := path + ".new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: removing a half-made %s: %w", s.Pkg, tmp, err)
	}
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: s.NoSync, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("%s: creating %s: %w", s.Pkg, tmp, err)
	}
	if err := errors.Join(db.Update(s.putRecord), db.Close()); err != nil {
		return fmt.Errorf("%s: creating %s: %w", s.Pkg, tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("%s: creating %s: %w", s.Pkg, path, err)
	}
	return s.syncDir()
}

// writeMarker writes the marker file (a note for people; its content is
// never read).
func (s Store) writeMarker(marker string) error {
	text := fmt.Sprintf("Troupe's %s package made %s in this directory. While this file is here, a missing,\n"+
		"empty or replaced %s stops the node instead of starting it with no state.\n"+
		"See docs/operations.md, \"Backups of the data directory\".\n", s.Pkg, s.Name, s.Name)
	err := os.WriteFile(marker, []byte(text), 0o600)
	if err == nil && !s.NoSync {
		err = syncFile(marker)
	}
	if err == nil {
		err = s.syncDir()
	}
	if err != nil {
		return fmt.Errorf("%s: writing %s: %w", s.Pkg, marker, err)
	}
	return nil
}

func (s Store) syncDir() error {
	if s.NoSync {
		return nil
	}
	return syncFile(s.Dir)
}

func (s Store) missing(format string, args ...any) error {
	return fmt.Errorf("%w: %s; %s", s.Missing, fmt.Sprintf(format, args...), s.Recovery)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// SetAside moves the files names (in dir; those not there are skipped) into
// a new directory dir/<prefix>-set-aside-<n>, n the first free number, and
// returns it; "" when none was there. It is how a store is started over
// without destroying what was in it.
func SetAside(dir, prefix string, names []string) (string, error) {
	var there []string
	for _, n := range names {
		ok, err := exists(filepath.Join(dir, n))
		if err != nil {
			return "", err
		}
		if ok {
			there = append(there, n)
		}
	}
	if len(there) == 0 {
		return "", nil
	}
	var aside string
	for n := 1; ; n++ {
		aside = filepath.Join(dir, fmt.Sprintf("%s-set-aside-%d", prefix, n))
		err := os.Mkdir(aside, 0o750)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
	for _, n := range there {
		if err := os.Rename(filepath.Join(dir, n), filepath.Join(aside, n)); err != nil {
			return "", err
		}
	}
	return aside, errors.Join(syncFile(aside), syncFile(dir))
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

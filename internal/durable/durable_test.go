package durable_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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

var errMissing = errors.New("missing")

func store(dir, name string) durable.Store {
	return durable.Store{Pkg: "test", Dir: dir, Name: name, NoSync: true, Corrupt: errCorrupt, Missing: errMissing, Recovery: "start over"}
}

func none(*bolt.DB) error { return nil }

func TestOpenRefusesGarbageAndClosesOnError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.db"), []byte("not a bbolt file at all, not even close"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := durable.Open(store(dir, "x.db"), none); !errors.Is(err, errCorrupt) {
		t.Fatalf("garbage file: %v, want the corruption error", err)
	}
	prepErr := errors.New("prepare failed")
	if _, _, err := durable.Open(store(dir, "y.db"), func(*bolt.DB) error { return prepErr }); !errors.Is(err, prepErr) {
		t.Fatalf("prepare's error: %v", err)
	}
	// Closed after the failed prepare: opening again does not wait for the lock.
	db, how, err := durable.Open(store(dir, "y.db"), none)
	if err != nil || how != durable.Existing {
		t.Fatalf("opening again: %v, %v", how, err)
	}
	_ = db.Close()
	if _, _, err := durable.Open(store(dir, "z.db"), func(*bolt.DB) error { panic("a fault while loading") }); !errors.Is(err, errCorrupt) {
		t.Fatalf("a panic in prepare: %v, want the corruption error", err)
	}
}

// A store is made once; once made, it must be there.
func TestOpenMakesAStoreOnceAndThenRequiresIt(t *testing.T) {
	open := func(s durable.Store) (durable.How, error) {
		t.Helper()
		db, how, err := durable.Open(s, none)
		if err == nil {
			_ = db.Close()
		}
		return how, err
	}
	made := func(t *testing.T) (durable.Store, string) {
		t.Helper()
		s := store(t.TempDir(), "x.db")
		if how, err := open(s); err != nil || how != durable.Created {
			t.Fatalf("a new dir: %v, %v; want Created", how, err)
		}
		if how, err := open(s); err != nil || how != durable.Existing {
			t.Fatalf("opened again: %v, %v; want Existing", how, err)
		}
		return s, filepath.Join(s.Dir, "x.db")
	}
	missing := func(t *testing.T, s durable.Store, want string) {
		t.Helper()
		_, err := open(s)
		if !errors.Is(err, errMissing) || !strings.Contains(err.Error(), want) || !strings.HasSuffix(err.Error(), "; start over") {
			t.Fatalf("%v; want the missing error naming %q, ending with the recovery", err, want)
		}
		t.Logf("refused: %v", err)
	}
	t.Run("deleted", func(t *testing.T) {
		s, path := made(t)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		missing(t, s, "x.db is missing, but "+filepath.Join(s.Dir, durable.Marker("x.db")))
	})
	t.Run("truncated", func(t *testing.T) {
		s, path := made(t)
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
		missing(t, s, "x.db is empty (0 bytes)")
	})
	t.Run("replaced by a new bbolt file", func(t *testing.T) {
		s, path := made(t)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil || db.Close() != nil {
			t.Fatal(err)
		}
		missing(t, s, "holds no creation record")
	})
	t.Run("replaced by another store", func(t *testing.T) {
		s, path := made(t)
		other := store(s.Dir, "y.db")
		if _, err := open(other); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(s.Dir, "y.db"), path); err != nil {
			t.Fatal(err)
		}
		missing(t, s, `holds the creation record of "y.db"`)
	})
	t.Run("deleted with its marker, traces left", func(t *testing.T) {
		s, path := made(t)
		if err := errors.Join(os.Remove(path), os.Remove(path+".created")); err != nil {
			t.Fatal(err)
		}
		s.Traces = func() ([]string, error) { return []string{"the-log"}, nil }
		missing(t, s, "the files it goes with are there (the-log)")
	})
	t.Run("the marker deleted is written again", func(t *testing.T) {
		s, path := made(t)
		if err := os.Remove(path + ".created"); err != nil {
			t.Fatal(err)
		}
		if how, err := open(s); err != nil || how != durable.Existing {
			t.Fatalf("%v, %v", how, err)
		}
		if _, err := os.Stat(path + ".created"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a crash while making it", func(t *testing.T) {
		s := store(t.TempDir(), "x.db")
		if err := os.WriteFile(filepath.Join(s.Dir, "x.db.new"), []byte("half made"), 0o600); err != nil {
			t.Fatal(err)
		}
		if how, err := open(s); err != nil || how != durable.Created {
			t.Fatalf("%v, %v; want Created", how, err)
		}
	})
	t.Run("an earlier version's file is adopted", func(t *testing.T) {
		s := store(t.TempDir(), "x.db")
		db, err := bolt.Open(filepath.Join(s.Dir, "x.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("meta")); return err }), db.Close()); err != nil {
			t.Fatal(err)
		}
		if how, err := open(s); err != nil || how != durable.Adopted {
			t.Fatalf("%v, %v; want Adopted", how, err)
		}
		if how, err := open(s); err != nil || how != durable.Existing {
			t.Fatalf("%v, %v; want Existing", how, err)
		}
	})
}

func TestSetAsideMovesWhatIsThere(t *testing.T) {
	dir := t.TempDir()
	if err := errors.Join(os.WriteFile(filepath.Join(dir, "a"), []byte("a"), 0o600), os.Mkdir(filepath.Join(dir, "d"), 0o750)); err != nil {
		t.Fatal(err)
	}
	aside, err := durable.SetAside(dir, "x", []string{"a", "b", "d"})
	if err != nil || aside != filepath.Join(dir, "x-set-aside-1") {
		t.Fatalf("%q, %v", aside, err)
	}
	for _, n := range []string{"a", "d"} {
		if _, err := os.Stat(filepath.Join(aside, n)); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(filepath.Join(dir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there: %v", n, err)
		}
	}
	if aside, err := durable.SetAside(dir, "x", []string{"a"}); err != nil || aside != "" {
		t.Fatalf("nothing there: %q, %v", aside, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	if aside, err := durable.SetAside(dir, "x", []string{"a"}); err != nil || aside != filepath.Join(dir, "x-set-aside-2") {
		t.Fatalf("a second time: %q, %v", aside, err)
	}
}

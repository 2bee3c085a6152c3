package commit

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
	"google.golang.org/protobuf/proto"

	pb "github.com/troupe-dev/troupe/messages"
)

// txlog is a node's commit log: one bbolt file with the coordinator's
// records, the participant's records and the generation counter. Every
// value is stored as a CRC-32C of its bytes followed by the bytes, and all
// of them are checked at start, so a flipped bit is ErrCorrupt rather than a
// silently different vote.
//
// Layout: bucket "meta" holds "generation" (8 bytes, big endian); buckets
// "coordinator" and "participant" map a transaction id to its TxRecord.
type txlog struct {
	db   *bolt.DB
	path string
}

var (
	bucketMeta  = []byte("meta")
	bucketCoord = []byte("coordinator")
	bucketPart  = []byte("participant")
	keyGen      = []byte("generation")
	crcTable    = crc32.MakeTable(crc32.Castagnoli)
)

// loaded is what openLog found.
type loaded struct {
	gen   uint64 // the previous incarnation's generation (0: a new log)
	coord map[string]*pb.TxRecord
	part  map[string]*pb.TxRecord
}

// openLog opens (or creates) dir/commit.db and loads and checks it.
func openLog(dir string, noSync bool) (l *txlog, st *loaded, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("commit: creating the data dir: %w", err)
	}
	path := filepath.Join(dir, "commit.db")
	// bbolt panics on some kinds of damage instead of returning an error,
	// and reads pages through mmap, where a page past a truncated file's
	// end faults: both become ErrCorrupt.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if l != nil {
				_ = l.db.Close()
			}
			l, st, err = nil, nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        2 * time.Second, // the file lock: another process (or incarnation) holds it
		NoSync:         noSync,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, nil, fmt.Errorf("commit: %s is locked by another process: %w", path, err)
		}
		return nil, nil, fmt.Errorf("%w: opening %s: %v", ErrCorrupt, path, err)
	}
	l = &txlog{db: db, path: path}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketCoord, bucketPart} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("commit: preparing %s: %w", path, err)
	}
	if st, err = l.load(); err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return l, st, nil
}

func (l *txlog) close() error { return l.db.Close() }

func seal(b []byte) []byte {
	out := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(out, crc32.Checksum(b, crcTable))
	copy(out[4:], b)
	return out
}

func unseal(what string, v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, fmt.Errorf("%w: %s is %d bytes, shorter than its checksum", ErrCorrupt, what, len(v))
	}
	b := v[4:]
	if got, want := crc32.Checksum(b, crcTable), binary.BigEndian.Uint32(v); got != want {
		return nil, fmt.Errorf("%w: %s fails its checksum (crc32c %08x, stored %08x)", ErrCorrupt, what, got, want)
	}
	return b, nil
}

func (l *txlog) load() (*loaded, error) {
	st := &loaded{coord: map[string]*pb.TxRecord{}, part: map[string]*pb.TxRecord{}}
	err := l.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyGen); v != nil {
			b, err := unseal("the generation", v)
			if err != nil {
				return err
			}
			if len(b) != 8 {
				return fmt.Errorf("%w: the generation is %d bytes, want 8", ErrCorrupt, len(b))
			}
			st.gen = binary.BigEndian.Uint64(b)
		}
		for _, r := range []struct {
			bucket []byte
			into   map[string]*pb.TxRecord
		}{{bucketCoord, st.coord}, {bucketPart, st.part}} {
			err := tx.Bucket(r.bucket).ForEach(func(k, v []byte) error {
				what := fmt.Sprintf("the %s record of %q", r.bucket, k)
				b, err := unseal(what, v)
				if err != nil {
					return err
				}
				rec := &pb.TxRecord{}
				if err := proto.Unmarshal(b, rec); err != nil {
					return fmt.Errorf("%w: %s does not decode: %v", ErrCorrupt, what, err)
				}
				r.into[string(k)] = rec
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return nil, fmt.Errorf("%s: %w", l.path, err)
		}
		return nil, fmt.Errorf("commit: reading %s: %w", l.path, err)
	}
	return st, nil
}

// change is one write of a log transaction: a record put, or deleted when
// rec is nil.
type change struct {
	bucket []byte
	tx     string
	rec    *pb.TxRecord
}

// write applies changes in one bbolt transaction, fsynced unless the log
// was opened with NoSync.
func (l *txlog) write(changes ...change) error {
	err := l.db.Update(func(tx *bolt.Tx) error {
		for _, c := range changes {
			b := tx.Bucket(c.bucket)
			if c.rec == nil {
				if err := b.Delete([]byte(c.tx)); err != nil {
					return err
				}
				continue
			}
			v, err := proto.Marshal(c.rec)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(c.tx), seal(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit: writing %s: %w", l.path, err)
	}
	return nil
}

// setGeneration records the generation of this incarnation.
func (l *txlog) setGeneration(gen uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], gen)
	err := l.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyGen, seal(b[:])) })
	if err != nil {
		return fmt.Errorf("commit: writing %s: %w", l.path, err)
	}
	return nil
}

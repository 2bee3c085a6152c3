package commit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/internal/durable"
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
)

// loaded is what openLog found.
type loaded struct {
	gen   uint64 // the previous incarnation's generation (0: a new log)
	coord map[string]*pb.TxRecord
	part  map[string]*pb.TxRecord
}

// openLog opens dir/commit.db, or makes it in a dir that never held one,
// and loads and checks it. A commit.db that was made and is missing or
// empty now is ErrMissingState (internal/durable keeps the rule).
func openLog(dir string, noSync bool) (*txlog, *loaded, error) {
	l := &txlog{path: filepath.Join(dir, "commit.db")}
	var st *loaded
	_, _, err := durable.Open(durable.Store{
		Pkg: "commit", Dir: dir, Name: "commit.db", NoSync: noSync,
		Corrupt: ErrCorrupt, Missing: ErrMissingState, Recovery: recovery,
	}, func(db *bolt.DB) error {
		l.db = db
		if err := db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketMeta, bucketCoord, bucketPart} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("commit: preparing %s: %w", l.path, err)
		}
		var err error
		st, err = l.load()
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return l, st, nil
}

// recovery ends every ErrMissingState.
const recovery = "the node would start with no memory of the transactions it prepared, voted on or decided, " +
	"so it does not start. Restore the node's data dir from a backup taken with it stopped; or, having " +
	"settled its transactions on the other nodes (StatusRequest), move commit.db.created away to start " +
	"an empty commit log (package commit's doc)"

func (l *txlog) close() error { return l.db.Close() }

func seal(b []byte) []byte { return durable.Seal(b) }

func unseal(what string, v []byte) ([]byte, error) { return durable.Unseal(ErrCorrupt, what, v) }

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

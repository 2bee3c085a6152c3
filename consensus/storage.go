package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// disk is a node's durable raft state: one bbolt file holding the hard
// state, the latest snapshot and the log entries after it. Every record is
// stored as a CRC-32C of its bytes followed by the bytes, and load checks
// all of them, so a flipped bit is an error at start, never a silently
// different log.
//
// Layout: bucket "meta" holds "hardstate" and "snapshot"; bucket "log" maps
// an entry's index (8 bytes, big endian, so the cursor walks in log order)
// to the entry.
type disk struct {
	db     *bolt.DB
	path   string
	noSync bool
	// hs is the latest hard state, dirty when it is not on disk yet (a
	// commit index that waits for the next transaction)
	hs    *pb.HardState
	dirty bool
}

var (
	bucketMeta   = []byte("meta")
	bucketLog    = []byte("log")
	keyHardState = []byte("hardstate")
	keySnapshot  = []byte("snapshot")
	crcTable     = crc32.MakeTable(crc32.Castagnoli)
)

// persisted is what load found.
type persisted struct {
	hs      *pb.HardState
	snap    *pb.Snapshot
	entries []*pb.Entry // after the snapshot, contiguous
}

func (p *persisted) empty() bool {
	return raft.IsEmptyHardState(p.hs) && raft.IsEmptySnap(p.snap) && len(p.entries) == 0
}

// openDisk opens (or creates) dir/raft.db and loads and checks its contents.
func openDisk(dir string, noSync bool) (d *disk, st *persisted, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("consensus: creating the data dir: %w", err)
	}
	path := filepath.Join(dir, "raft.db")
	// bbolt panics on some kinds of damage instead of returning an error,
	// and reads its pages through mmap, where a page past a truncated
	// file's end faults: both become ErrCorrupt.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if d != nil {
				_ = d.db.Close()
			}
			d, st, err = nil, nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        2 * time.Second, // the file lock: another process (or incarnation) holds it
		NoSync:         noSync,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// Map 64 MiB from the start: every growth of the mapping remaps
		// the file under a lock.
		InitialMmapSize: 64 << 20,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, nil, fmt.Errorf("consensus: %s is locked by another process: %w", path, err)
		}
		return nil, nil, fmt.Errorf("%w: opening %s: %v", ErrCorrupt, path, err)
	}
	d = &disk{db: db, path: path, noSync: noSync}
	if err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketMeta); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketLog)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("consensus: preparing %s: %w", path, err)
	}
	st, err = d.load()
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return d, st, nil
}

// close writes a pending commit index and closes the file.
func (d *disk) close() error {
	var err error
	if d.dirty {
		err = d.db.Update(func(tx *bolt.Tx) error { return d.putHardState(tx.Bucket(bucketMeta)) })
	}
	return errors.Join(err, d.db.Close())
}

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

func indexKey(i uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], i)
	return k[:]
}

func (d *disk) load() (*persisted, error) {
	st := &persisted{hs: &pb.HardState{}, snap: &pb.Snapshot{}}
	err := d.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyHardState); v != nil {
			b, err := unseal("the hard state", v)
			if err != nil {
				return err
			}
			if err := proto.Unmarshal(b, st.hs); err != nil {
				return fmt.Errorf("%w: the hard state does not decode: %v", ErrCorrupt, err)
			}
		}
		if v := meta.Get(keySnapshot); v != nil {
			b, err := unseal("the snapshot", v)
			if err != nil {
				return err
			}
			if err := proto.Unmarshal(b, st.snap); err != nil {
				return fmt.Errorf("%w: the snapshot does not decode: %v", ErrCorrupt, err)
			}
		}
		snapIndex := st.snap.GetMetadata().GetIndex()
		next := uint64(0)
		return tx.Bucket(bucketLog).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("%w: a log key of %d bytes", ErrCorrupt, len(k))
			}
			i := binary.BigEndian.Uint64(k)
			b, err := unseal(fmt.Sprintf("log entry %d", i), v)
			if err != nil {
				return err
			}
			e := &pb.Entry{}
			if err := proto.Unmarshal(b, e); err != nil {
				return fmt.Errorf("%w: log entry %d does not decode: %v", ErrCorrupt, i, err)
			}
			if e.GetIndex() != i {
				return fmt.Errorf("%w: log key %d holds entry %d", ErrCorrupt, i, e.GetIndex())
			}
			if i <= snapIndex {
				return nil // kept for followers, covered by the snapshot
			}
			if next == 0 && i != snapIndex+1 {
				return fmt.Errorf("%w: the log starts at %d but the snapshot ends at %d", ErrCorrupt, i, snapIndex)
			}
			if next != 0 && i != next {
				return fmt.Errorf("%w: the log jumps from entry %d to %d", ErrCorrupt, next-1, i)
			}
			next = i + 1
			st.entries = append(st.entries, e)
			return nil
		})
	})
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return nil, fmt.Errorf("%s: %w", d.path, err)
		}
		return nil, fmt.Errorf("consensus: reading %s: %w", d.path, err)
	}
	last := st.snap.GetMetadata().GetIndex()
	if n := len(st.entries); n > 0 {
		last = st.entries[n-1].GetIndex()
	}
	if st.hs.GetCommit() > last {
		return nil, fmt.Errorf("%w: %s: the hard state commits index %d but the log ends at %d", ErrCorrupt, d.path, st.hs.GetCommit(), last)
	}
	return st, nil
}

// save persists one Ready's state in one transaction: a received snapshot
// (which replaces the whole log), then the entries (which replace any
// entries from the first one's index on), then the hard state. It fsyncs
// when sync is set and NoSync is not.
//
// A Ready that only moves the commit index (raft asks no sync) costs no
// transaction: the commit index need not be durable — after a restart raft
// learns it again from the leader and the store is rebuilt from the
// snapshot and the log — so it is written with the next transaction.
// Under load about half of all Readys are such.
func (d *disk) save(hs *pb.HardState, entries []*pb.Entry, snap *pb.Snapshot, sync bool) error {
	if !raft.IsEmptyHardState(hs) {
		d.hs, d.dirty = hs, true
	}
	if len(entries) == 0 && raft.IsEmptySnap(snap) && (!sync || !d.dirty) {
		return nil
	}
	d.db.NoSync = d.noSync || !sync
	err := d.db.Update(func(tx *bolt.Tx) error {
		meta, log := tx.Bucket(bucketMeta), tx.Bucket(bucketLog)
		if !raft.IsEmptySnap(snap) {
			if err := putProto(meta, keySnapshot, snap); err != nil {
				return err
			}
			if err := deleteFrom(log, 0); err != nil {
				return err
			}
		}
		if len(entries) > 0 {
			if err := deleteFrom(log, entries[0].GetIndex()); err != nil {
				return err
			}
			for _, e := range entries {
				if err := putProto(log, indexKey(e.GetIndex()), e); err != nil {
					return err
				}
			}
		}
		return d.putHardState(meta)
	})
	if err != nil {
		return fmt.Errorf("consensus: writing %s: %w", d.path, err)
	}
	d.dirty = false
	return nil
}

// putHardState writes the hard state if it is dirty.
func (d *disk) putHardState(meta *bolt.Bucket) error {
	if !d.dirty {
		return nil
	}
	return putProto(meta, keyHardState, d.hs)
}

// saveSnapshot persists a snapshot the node made itself and drops the log
// up to compactTo (entries after compactTo stay for slow followers).
func (d *disk) saveSnapshot(snap *pb.Snapshot, compactTo uint64) error {
	d.db.NoSync = d.noSync
	err := d.db.Update(func(tx *bolt.Tx) error {
		// The hard state first: raft refuses to start from a snapshot
		// past the stored commit index, and the snapshot is at the
		// applied index, which the commit index in memory covers.
		if err := d.putHardState(tx.Bucket(bucketMeta)); err != nil {
			return err
		}
		if err := putProto(tx.Bucket(bucketMeta), keySnapshot, snap); err != nil {
			return err
		}
		return deleteRange(tx.Bucket(bucketLog), 0, compactTo)
	})
	if err != nil {
		return fmt.Errorf("consensus: writing a snapshot to %s: %w", d.path, err)
	}
	d.dirty = false
	return nil
}

func putProto(b *bolt.Bucket, k []byte, m proto.Message) error {
	v, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return b.Put(k, seal(v))
}

// deleteFrom deletes every entry with an index of at least from.
func deleteFrom(log *bolt.Bucket, from uint64) error {
	return deleteRange(log, from, math.MaxUint64)
}

// deleteRange deletes the entries with indexes in [from, to]. The keys are
// collected first: deleting under a cursor and seeking again rescans the
// emptied pages every time (quadratic; it was a quarter of the CPU).
func deleteRange(log *bolt.Bucket, from, to uint64) error {
	var keys [][]byte
	c := log.Cursor()
	for k, _ := c.Seek(indexKey(from)); k != nil && binary.BigEndian.Uint64(k) <= to; k, _ = c.Next() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if err := log.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

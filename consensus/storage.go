package consensus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"
	"github.com/tidwall/wal"
	bolt "go.etcd.io/bbolt"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/internal/durable"
)

// disk is a node's durable raft state in its data dir:
//
//   - raft.db (bbolt) holds the hard state, the latest snapshot and the
//     log's base: the raft index just before the log's first slot;
//   - wal-<base>/ is the log after the snapshot, an append-only
//     write-ahead log (github.com/tidwall/wal: segment files, batch
//     appends, truncation from either end). Its slot i holds raft entry
//     base+i.
//
// The hot path (a Ready with entries) is one append of all its entries,
// one write system call and, when raft asks, one fsync; bbolt is written
// only when the term or the vote changes, for snapshots and at close.
// Before this split every Ready cost a bbolt transaction, and bbolt was
// about 45% of the CPU of a replicated write (docs/consensus.md).
//
// Every record, in both files, is stored as a CRC-32C of its bytes
// followed by the bytes, and load checks all of them, so a flipped bit is
// an error at start, never a silently different log.
type disk struct {
	db     *bolt.DB
	dir    string
	path   string // raft.db
	noSync bool

	log     *wal.Log
	logDir  string
	base    uint64 // the raft index of log slot 0
	last    uint64 // the raft index of the last entry in the log (base when empty)
	batch   wal.Batch
	scratch []byte
	// unsynced: entries appended since the last fsync of the log
	unsynced bool

	// hs is the latest hard state, dirty when it is not on disk yet: a
	// commit index waits for the next bbolt write (a term or vote
	// change, a snapshot, close), since raft learns it again after a
	// restart. diskTerm and diskVote are those on disk.
	hs                 *pb.HardState
	dirty              bool
	diskTerm, diskVote uint64

	// repaired counts the bytes of torn writes cut off the log at open.
	repaired int64
}

var (
	bucketMeta   = []byte("meta")
	bucketLog    = []byte("log") // the log before it moved to the WAL; migrated at open
	keyHardState = []byte("hardstate")
	keySnapshot  = []byte("snapshot")
	keyLogBase   = []byte("logbase")
)

// walSegmentSize bounds a log segment file. The library keeps the tail
// segment in memory and rewrites a segment when the log is compacted
// through it, so it stays small.
const walSegmentSize = 4 << 20

// persisted is what load found.
type persisted struct {
	hs      *pb.HardState
	snap    *pb.Snapshot
	entries []*pb.Entry // after the snapshot, contiguous
}

func (p *persisted) empty() bool {
	return raft.IsEmptyHardState(p.hs) && raft.IsEmptySnap(p.snap) && len(p.entries) == 0
}

func logDirName(base uint64) string { return fmt.Sprintf("wal-%020d", base) }

// openDisk opens the raft state in dir, or makes it in a dir that holds
// none, and loads and checks it. A state that is there only in part is
// ErrMissingState (see the package doc, # Storage).
func openDisk(dir string, noSync bool) (*disk, *persisted, error) {
	d := &disk{dir: dir, path: filepath.Join(dir, "raft.db"), noSync: noSync}
	var st *persisted
	_, _, err := durable.Open(durable.Store{
		Pkg: "consensus", Dir: dir, Name: "raft.db", NoSync: noSync,
		Corrupt: ErrCorrupt, Missing: ErrMissingState, Recovery: recovery,
		Traces: func() ([]string, error) { return logTraces(dir) },
	}, func(db *bolt.DB) error {
		d.db = db
		if err := db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(bucketMeta)
			return err
		}); err != nil {
			return fmt.Errorf("consensus: preparing %s: %w", d.path, err)
		}
		var err error
		if st, err = d.open(); err != nil && d.log != nil {
			_ = d.log.Close()
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return d, st, nil
}

// PrepareDataDir applies cfg.ForceNewState to node's raft state in
// cfg.DataDir. The protocol calls it when it starts on a node (not at a
// supervised restart); call it yourself only to apply the flag without
// starting. Without ForceNewState it does nothing. With it, a state the protocol
// would refuse (ErrMissingState, ErrCorrupt) is moved aside into
// DataDir/<node>/raft-set-aside-<n>/ and the protocol then starts as a
// new, empty member waiting to be added back; a complete state is left as
// it is. Both are logged as warnings on log. Other errors (the data dir
// locked by another process, unreadable) are returned.
func PrepareDataDir(cfg Config, node actors.NodeName, log zerolog.Logger) error {
	if !cfg.ForceNewState {
		return nil
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	dir := filepath.Join(cfg.DataDir, string(node))
	d, _, err := openDisk(dir, cfg.NoSync)
	if err == nil {
		log.Warn().Str("dir", dir).Msg("ForceNewState (--force-new-state) is set, but the raft state in the data dir is complete " +
			"(or new): it is kept and the flag does nothing; remove it so that a later loss of state stops the node again")
		return d.close()
	}
	if !errors.Is(err, ErrMissingState) && !errors.Is(err, ErrCorrupt) {
		return err
	}
	names := []string{"raft.db", durable.Marker("raft.db")}
	logs, gerr := filepath.Glob(filepath.Join(dir, "wal-*"))
	if gerr != nil {
		return gerr
	}
	for _, l := range logs {
		names = append(names, filepath.Base(l))
	}
	aside, serr := durable.SetAside(dir, "raft", names)
	if serr != nil {
		return fmt.Errorf("consensus: ForceNewState: moving the raft state of %s aside: %w (the state was refused: %w)", dir, serr, err)
	}
	log.Warn().Str("dir", dir).Str("set_aside", aside).AnErr("refused", err).
		Msg("FORCE NEW STATE: this node's raft state was refused and is moved aside; the node starts over as a new, empty member " +
			"that has forgotten its votes and the entries it acknowledged. It must have been removed from the raft group " +
			"(node raft remove NAME) and must now be added back (node raft add-voter NAME): while still a member " +
			"it could vote twice in one term. Remove --force-new-state for later starts")
	return nil
}

// recovery ends every ErrMissingState: the ways to start again.
const recovery = "the node would start without the votes and entries it promised, so it does not start. " +
	"If the group lives on, start this node over as a new, empty member: remove it from the group " +
	"(node raft remove NAME on the leader), start it with --force-new-state --raft-join " +
	"(Config.ForceNewState and Join; what is there is moved aside, not deleted), then add it back " +
	"(node raft add-voter NAME). If the whole group lost its state, restore every node's data dir " +
	"from one cold backup (docs/operations.md, \"Backups of the data directory\")"

// logTraces lists the logs in dir that only a raft.db can have made: one
// holding a record, or based past 0 (made for a snapshot).
func logTraces(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("consensus: reading %s: %w", dir, err)
	}
	var out []string
	for _, de := range des {
		if !de.IsDir() || !strings.HasPrefix(de.Name(), "wal-") {
			continue
		}
		logDir := filepath.Join(dir, de.Name())
		if de.Name() != logDirName(0) {
			out = append(out, logDir)
			continue
		}
		segs, err := os.ReadDir(logDir)
		if err != nil {
			return nil, fmt.Errorf("consensus: reading the log %s: %w", logDir, err)
		}
		for _, seg := range segs {
			if fi, err := seg.Info(); err == nil && !seg.IsDir() && fi.Size() > 0 {
				out = append(out, logDir)
				break
			}
		}
	}
	return out, nil
}

// hasSegment tells whether the log dir holds a segment file (the library
// names them by the index of their first entry: 20 digits, then maybe
// .START or .END while it truncates). An opened log always has one.
func hasSegment(logDir string) (bool, error) {
	des, err := os.ReadDir(logDir)
	if err != nil {
		return false, fmt.Errorf("consensus: reading the log %s: %w", logDir, err)
	}
	for _, de := range des {
		n := de.Name()
		if !de.IsDir() && len(n) >= 20 && strings.Trim(n[:20], "0123456789") == "" {
			return true, nil
		}
	}
	return false, nil
}

// open reads raft.db, migrates a log kept in it by an earlier version,
// opens the WAL it names, removes any other (left by a crash while a
// snapshot replaced the log) and loads everything. Once raft.db records
// anything (a hard state, a snapshot, a log base), the log it names must
// be there with its segments: ErrMissingState otherwise.
func (d *disk) open() (*persisted, error) {
	var legacy []*pb.Entry
	hasLegacy, records := false, false
	err := d.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyLogBase); v != nil {
			b, err := unseal("the log base", v)
			if err != nil {
				return err
			}
			if len(b) != 8 {
				return fmt.Errorf("%w: the log base is %d bytes, not 8", ErrCorrupt, len(b))
			}
			d.base = binary.BigEndian.Uint64(b)
		}
		records = d.base > 0 || meta.Get(keyHardState) != nil || meta.Get(keySnapshot) != nil
		if lb := tx.Bucket(bucketLog); lb != nil {
			hasLegacy = true
			var err error
			legacy, err = readLegacyLog(lb)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, d.wrap(err)
	}
	d.logDir = filepath.Join(d.dir, logDirName(d.base))
	if !hasLegacy {
		if err := d.checkLog(records); err != nil {
			return nil, err
		}
	}
	if err := d.openLog(); err != nil {
		return nil, err
	}
	if hasLegacy {
		if err := d.migrate(legacy); err != nil {
			return nil, err
		}
	}
	if err := d.removeStaleLogs(); err != nil {
		return nil, err
	}
	st, err := d.load()
	if err != nil {
		return nil, err
	}
	d.hs, d.diskTerm, d.diskVote = st.hs, st.hs.GetTerm(), st.hs.GetVote()
	return st, nil
}

// checkLog refuses a log that raft.db names and records state for, but
// that is missing or holds no segment. (A log is made right after
// raft.db; a crash in between leaves a raft.db that records nothing.)
func (d *disk) checkLog(records bool) error {
	_, err := os.Stat(d.logDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s names the log %s, which cannot be read: %v", ErrCorrupt, d.path, d.logDir, err)
	}
	if !records {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %s records a hard state, a snapshot or a log base, but its log %s is missing; %s",
			ErrMissingState, d.path, d.logDir, recovery)
	}
	ok, err := hasSegment(d.logDir)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s records a hard state, a snapshot or a log base, but its log %s holds no segment file (they were deleted); %s",
			ErrMissingState, d.path, d.logDir, recovery)
	}
	return nil
}

func (d *disk) openLog() error {
	dropped, err := repairTail(d.logDir)
	if err != nil {
		return err
	}
	d.repaired += dropped
	l, err := wal.Open(d.logDir, &wal.Options{
		NoSync:           true, // save syncs when raft asks and NoSync is off
		SegmentSize:      walSegmentSize,
		SegmentCacheSize: 2,
		NoCopy:           true, // load unmarshals (copies) every entry at once
		AllowEmpty:       true, // empty after a snapshot replaced the log
		DirPerms:         0o750,
		FilePerms:        0o600,
	})
	if err != nil {
		return fmt.Errorf("%w: opening the log %s: %v", ErrCorrupt, d.logDir, err)
	}
	d.log = l
	last, err := l.LastIndex()
	if err != nil {
		return fmt.Errorf("%w: the log %s: %v", ErrCorrupt, d.logDir, err)
	}
	d.last = d.base + last
	return nil
}

// repairTail cuts a torn write off the end of the log's last segment and
// returns how many bytes it dropped. A write the machine lost power in
// before its fsync — never acknowledged — can leave a final record cut
// short, or a tail of zeros where the file grew before its data reached
// the disk (with a record failing its checksum in front of it). Records
// are never empty (a CRC comes first), so zeros after the last record are
// always such a trace. Anything else that fails — a record failing its
// checksum with no zeros after it, damage before the end — is left for
// load to refuse: it may be an acknowledged write.
func repairTail(dir string) (int64, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("consensus: reading the log %s: %w", dir, err)
	}
	last := ""
	for _, de := range des {
		if n := de.Name(); len(n) == 20 && !de.IsDir() && n > last {
			last = n
		}
	}
	if last == "" {
		return 0, nil
	}
	path := filepath.Join(dir, last)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("consensus: reading the log %s: %w", path, err)
	}
	// Walk the records (a uvarint length, then the bytes) while whole.
	end, prev := 0, -1 // the end of the last whole record, and its start
	for end < len(data) {
		size, n := binary.Uvarint(data[end:])
		if n <= 0 || size == 0 || uint64(len(data)-end-n) < size {
			break
		}
		prev, end = end, end+n+int(size)
	}
	rest := data[end:]
	if len(rest) == 0 {
		return 0, nil
	}
	zeros := len(rest) - len(bytes.TrimLeft(rest, "\x00"))
	switch {
	case zeros == len(rest):
		// A zero tail: the record before it is part of the torn write
		// when it fails its checksum.
		if prev >= 0 {
			size, n := binary.Uvarint(data[prev:])
			if _, err := unseal("", data[prev+n:prev+n+int(size)]); err != nil {
				end = prev
			}
		}
	case zeros == 0:
		// A record cut short: its length runs past the end, and no whole
		// record follows (a damaged length in the middle of the log
		// looks the same at first, but records follow it).
		if size, n := binary.Uvarint(rest); n > 0 && size > 0 && uint64(len(rest)-n) >= size {
			return 0, nil // whole after all: not a torn tail
		}
		if wholeRecordIn(rest[1:]) {
			return 0, nil
		}
	default:
		return 0, nil // zeros, then data: damage, not a torn tail
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("consensus: repairing the log %s: %w", path, err)
	}
	if err := errors.Join(f.Truncate(int64(end)), f.Sync(), f.Close()); err != nil {
		return 0, fmt.Errorf("consensus: repairing the log %s: %w", path, err)
	}
	return int64(len(data) - end), nil
}

// wholeRecordIn tells whether a record that passes its checksum starts
// anywhere in b (a chance match is one in 2³²).
func wholeRecordIn(b []byte) bool {
	for i := range b {
		size, n := binary.Uvarint(b[i:])
		if n <= 0 || size < 4 || uint64(len(b)-i-n) < size {
			continue
		}
		if _, err := unseal("", b[i+n:i+n+int(size)]); err == nil {
			return true
		}
	}
	return false
}

// removeStaleLogs removes the wal-* directories other than the current one.
func (d *disk) removeStaleLogs() error {
	des, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("consensus: reading %s: %w", d.dir, err)
	}
	for _, de := range des {
		if de.IsDir() && strings.HasPrefix(de.Name(), "wal-") && de.Name() != filepath.Base(d.logDir) {
			if err := os.RemoveAll(filepath.Join(d.dir, de.Name())); err != nil {
				return fmt.Errorf("consensus: removing a stale log: %w", err)
			}
		}
	}
	return nil
}

// readLegacyLog reads the entries an earlier version kept in raft.db.
func readLegacyLog(lb *bolt.Bucket) ([]*pb.Entry, error) {
	var out []*pb.Entry
	err := lb.ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("%w: a log key of %d bytes", ErrCorrupt, len(k))
		}
		i := binary.BigEndian.Uint64(k)
		e, err := decodeEntry(fmt.Sprintf("log entry %d", i), v)
		if err != nil {
			return err
		}
		if e.GetIndex() != i {
			return fmt.Errorf("%w: log key %d holds entry %d", ErrCorrupt, i, e.GetIndex())
		}
		if n := len(out); n > 0 && out[n-1].GetIndex()+1 != i {
			return fmt.Errorf("%w: the log jumps from entry %d to %d", ErrCorrupt, out[n-1].GetIndex(), i)
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// migrate moves a log kept in raft.db into a new WAL, then drops it from
// raft.db. A crash in between leaves both: the next open migrates again
// into a fresh WAL.
func (d *disk) migrate(entries []*pb.Entry) error {
	if len(entries) == 0 {
		return d.dropLegacy()
	}
	if err := d.log.Close(); err != nil {
		return err
	}
	d.log = nil
	if err := os.RemoveAll(d.logDir); err != nil {
		return fmt.Errorf("consensus: migrating the log: %w", err)
	}
	d.base = entries[0].GetIndex() - 1
	d.logDir = filepath.Join(d.dir, logDirName(d.base))
	if err := os.RemoveAll(d.logDir); err != nil {
		return fmt.Errorf("consensus: migrating the log: %w", err)
	}
	if err := d.openLog(); err != nil {
		return err
	}
	if err := d.append(entries); err != nil {
		return err
	}
	if err := d.log.Sync(); err != nil {
		return fmt.Errorf("consensus: migrating the log: %w", err)
	}
	return d.dropLegacy()
}

// dropLegacy records the log base and drops the log kept in raft.db.
func (d *disk) dropLegacy() error {
	d.db.NoSync = d.noSync
	err := d.db.Update(func(tx *bolt.Tx) error {
		if err := putBase(tx.Bucket(bucketMeta), d.base); err != nil {
			return err
		}
		return tx.DeleteBucket(bucketLog)
	})
	if err != nil {
		return fmt.Errorf("consensus: migrating the log: %w", err)
	}
	return nil
}

// close writes a pending commit index and closes both files. The log is
// synced first: the commit index in raft.db must not point past the log
// on disk.
func (d *disk) close() error {
	var err error
	if d.dirty {
		if d.unsynced && !d.noSync {
			err = d.log.Sync()
		}
		if err == nil {
			d.unsynced = false
			d.db.NoSync = d.noSync
			err = d.db.Update(func(tx *bolt.Tx) error { return d.putHardState(tx.Bucket(bucketMeta)) })
		}
	}
	return errors.Join(err, d.log.Close(), d.db.Close())
}

func seal(b []byte) []byte { return durable.Seal(b) }

func unseal(what string, v []byte) ([]byte, error) { return durable.Unseal(ErrCorrupt, what, v) }

// wrap names raft.db in an error from reading it.
func (d *disk) wrap(err error) error {
	if errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("%s: %w", d.path, err)
	}
	return fmt.Errorf("consensus: reading %s: %w", d.path, err)
}

func decodeEntry(what string, v []byte) (*pb.Entry, error) {
	b, err := unseal(what, v)
	if err != nil {
		return nil, err
	}
	e := &pb.Entry{}
	if err := proto.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("%w: %s does not decode: %v", ErrCorrupt, what, err)
	}
	return e, nil
}

// load reads the hard state, the snapshot and the log, and checks that
// they fit together.
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
		return nil
	})
	if err != nil {
		return nil, d.wrap(err)
	}
	snapIndex := st.snap.GetMetadata().GetIndex()
	first, err := d.log.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("%w: the log %s: %v", ErrCorrupt, d.logDir, err)
	}
	next := uint64(0)
	for slot := first; d.base+slot <= d.last; slot++ {
		i := d.base + slot
		v, err := d.log.Read(slot)
		if err != nil {
			return nil, fmt.Errorf("%w: the log %s: entry %d: %v", ErrCorrupt, d.logDir, i, err)
		}
		e, err := decodeEntry(fmt.Sprintf("log entry %d", i), v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.logDir, err)
		}
		if e.GetIndex() != i {
			return nil, fmt.Errorf("%w: %s: log slot %d (raft index %d) holds entry %d", ErrCorrupt, d.logDir, slot, i, e.GetIndex())
		}
		if i <= snapIndex {
			continue // kept for followers, covered by the snapshot
		}
		if next == 0 && i != snapIndex+1 {
			return nil, fmt.Errorf("%w: %s: the log starts at %d but the snapshot ends at %d", ErrCorrupt, d.logDir, i, snapIndex)
		}
		next = i + 1
		st.entries = append(st.entries, e)
	}
	last := snapIndex
	if n := len(st.entries); n > 0 {
		last = st.entries[n-1].GetIndex()
	}
	if st.hs.GetCommit() > last {
		return nil, fmt.Errorf("%w: %s: the hard state commits index %d but the log ends at %d", ErrCorrupt, d.path, st.hs.GetCommit(), last)
	}
	return st, nil
}

// save persists one Ready's state: a received snapshot (which replaces
// the whole log), then the entries (which replace any entries from the
// first one's index on), then the hard state when its term or vote
// changed. It fsyncs when sync is set and NoSync is not. It is write,
// then flush.
//
// A hard state that only moves the commit index is not written at once:
// the commit index need not be durable — after a restart raft learns it
// again from the leader and the store is rebuilt from the snapshot and
// the log — so it waits for the next bbolt write (a term or vote change,
// a snapshot, close).
func (d *disk) save(hs *pb.HardState, entries []*pb.Entry, snap *pb.Snapshot, sync bool) error {
	if err := d.write(hs, entries, snap); err != nil {
		return err
	}
	return d.flush(sync)
}

// write makes the first half of save: the snapshot, the entries (not
// synced), the hard state in memory. Several writes may share one flush
// (the writer's group commit).
func (d *disk) write(hs *pb.HardState, entries []*pb.Entry, snap *pb.Snapshot) error {
	if !raft.IsEmptyHardState(hs) {
		d.hs, d.dirty = hs, true
	}
	if !raft.IsEmptySnap(snap) {
		if err := d.installSnapshot(snap); err != nil {
			return err
		}
	}
	if len(entries) > 0 {
		if err := d.append(entries); err != nil {
			return err
		}
		d.unsynced = true
	}
	return nil
}

// flush makes the second half of save: with sync (and NoSync off), one
// fsync of what write appended to the log; then the hard state to raft.db
// when its term or vote changed.
func (d *disk) flush(sync bool) error {
	sync = sync && !d.noSync
	if sync && d.unsynced {
		if err := d.log.Sync(); err != nil {
			return fmt.Errorf("consensus: syncing the log %s: %w", d.logDir, err)
		}
		d.unsynced = false
	}
	if d.dirty && (d.hs.GetTerm() != d.diskTerm || d.hs.GetVote() != d.diskVote) {
		d.db.NoSync = !sync
		if err := d.db.Update(func(tx *bolt.Tx) error { return d.putHardState(tx.Bucket(bucketMeta)) }); err != nil {
			return fmt.Errorf("consensus: writing %s: %w", d.path, err)
		}
	}
	return nil
}

// append writes entries to the log, first truncating any entries from
// the first one's index on (a new leader overwrote them).
func (d *disk) append(entries []*pb.Entry) error {
	first := entries[0].GetIndex()
	if first <= d.base {
		return fmt.Errorf("consensus: appending entry %d at or before the log's base %d (the snapshot covers it)", first, d.base)
	}
	if first <= d.last {
		if err := d.log.TruncateBack(first - 1 - d.base); err != nil {
			return fmt.Errorf("consensus: truncating the log %s after %d: %w", d.logDir, first-1, err)
		}
		d.last = first - 1
	}
	if first != d.last+1 {
		return fmt.Errorf("consensus: appending entry %d to a log that ends at %d", first, d.last)
	}
	for _, e := range entries {
		// Seal into a reused buffer: the batch copies it.
		b := append(d.scratch[:0], 0, 0, 0, 0)
		b, err := proto.MarshalOptions{}.MarshalAppend(b, e)
		if err != nil {
			return err
		}
		durable.SealInPlace(b)
		d.batch.Write(e.GetIndex()-d.base, b)
		d.scratch = b
	}
	if err := d.log.WriteBatch(&d.batch); err != nil {
		d.batch.Clear()
		return fmt.Errorf("consensus: appending to the log %s: %w", d.logDir, err)
	}
	d.last = entries[len(entries)-1].GetIndex()
	return nil
}

// installSnapshot replaces the whole log with a snapshot from the leader:
// a new, empty log based at the snapshot's index, recorded in raft.db with
// the snapshot in one transaction, then the old log removed. A crash
// before the transaction keeps the old state (the new directory is stale
// and removed at the next open); after it, the new.
func (d *disk) installSnapshot(snap *pb.Snapshot) error {
	base := snap.GetMetadata().GetIndex()
	old, oldDir := d.log, d.logDir
	dir := filepath.Join(d.dir, logDirName(base))
	if dir == oldDir {
		// Same base: empty the log in place.
		first, err := d.log.FirstIndex()
		if err == nil {
			err = d.log.TruncateBack(first - 1)
		}
		if err != nil {
			return fmt.Errorf("consensus: emptying the log %s for a snapshot: %w", d.logDir, err)
		}
		d.last = base
		old = nil
	} else {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("consensus: installing a snapshot: %w", err)
		}
		oldBase := d.base
		d.logDir, d.base = dir, base
		if err := d.openLog(); err != nil {
			d.log, d.logDir, d.base = old, oldDir, oldBase
			return err
		}
	}
	d.db.NoSync = d.noSync
	err := d.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := putProto(meta, keySnapshot, snap); err != nil {
			return err
		}
		if err := putBase(meta, base); err != nil {
			return err
		}
		return d.putHardState(meta)
	})
	if err != nil {
		return fmt.Errorf("consensus: writing a snapshot to %s: %w", d.path, err)
	}
	if old != nil {
		if err := errors.Join(old.Close(), os.RemoveAll(oldDir)); err != nil {
			return fmt.Errorf("consensus: removing the log a snapshot replaced: %w", err)
		}
	}
	return nil
}

// putHardState writes the hard state if it is dirty.
func (d *disk) putHardState(meta *bolt.Bucket) error {
	if !d.dirty {
		return nil
	}
	if err := putProto(meta, keyHardState, d.hs); err != nil {
		return err
	}
	d.dirty, d.diskTerm, d.diskVote = false, d.hs.GetTerm(), d.hs.GetVote()
	return nil
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
		return putProto(tx.Bucket(bucketMeta), keySnapshot, snap)
	})
	if err != nil {
		return fmt.Errorf("consensus: writing a snapshot to %s: %w", d.path, err)
	}
	first, err := d.log.FirstIndex()
	if err != nil {
		return fmt.Errorf("consensus: the log %s: %w", d.logDir, err)
	}
	if compactTo < d.base+first || compactTo >= d.last {
		return nil // nothing to drop, or it would empty the log
	}
	if err := d.log.TruncateFront(compactTo + 1 - d.base); err != nil {
		return fmt.Errorf("consensus: compacting the log %s to %d: %w", d.logDir, compactTo, err)
	}
	return nil
}

func putProto(b *bolt.Bucket, k []byte, m proto.Message) error {
	v, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return b.Put(k, seal(v))
}

func putBase(meta *bolt.Bucket, base uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], base)
	return meta.Put(keyLogBase, seal(b[:]))
}

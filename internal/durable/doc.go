// Package durable holds what Troupe's durable stores share: opening the
// bbolt file a store keeps its state in, with bbolt's panics and memory
// faults on a damaged file turned into errors; values sealed with a
// checksum so that a flipped bit is refused at start rather than read as
// different data; and one rule for files that should be there.
// The commit log (package commit, commit.db) and the raft storage (package
// consensus, raft.db and its log) use it; each passes its own errors.
//
// # The rule: a store is made once, and a store that was made must be there
//
// A store is a bbolt file in a node's data dir. [Open] makes it only when
// nothing of it is there: no bbolt file, no marker file and none of the
// store's other files ([Store].Traces: the raft log). It writes the file
// with a creation record inside (under a temporary name, renamed into
// place once recorded), then a marker file beside it ([Marker]:
// raft.db.created, commit.db.created). From then on every open needs the
// bbolt file, not empty, holding its own creation record. A bbolt file
// deleted (its marker or its traces are there), truncated to 0 bytes
// (which bbolt would silently make new), or replaced by a file without
// its record is refused with the store's Missing error, never made again:
// a node that started without its state would break the promises it made
// (a raft vote, a two-phase-commit yes). The error says what is missing
// and how to recover ([Store].Recovery). A marker missing beside a
// recorded file is written again; a file of an earlier version (data, no
// record, no marker) is adopted: recorded, then marked. Starting over is
// explicit: [SetAside] moves a store's files into a directory beside them.
//
// Only deleting every file of a store together (the bbolt file, its
// marker and its traces) looks like a new node; the node's whole data dir
// is its identity.
//
// # Concurrency
//
// Open, SetAside and the seal functions are safe for concurrent use on
// different stores; one store is opened by one process at a time (bbolt's
// file lock, waited for 2 s).
//
// # Testing
//
// durable_test.go checks sealing, opening, the rule (deleted, truncated,
// replaced, a half-made store, a store of an earlier version) and setting
// aside; packages commit (TestLogKeepsRecordsAndRefusesDamage,
// TestLogRefusesALostFile) and consensus (FuzzOpenDisk, FuzzOpenLog,
// TestDiskRefusesALostRaftDB, TestDiskRefusesALostLog) open damaged and
// incomplete data dirs through Open.
package durable

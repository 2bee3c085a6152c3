// Package durable holds what Troupe's durable logs share: opening the bbolt
// file a log keeps its state in, with bbolt's panics and memory faults on a
// damaged file turned into errors, and values sealed with a checksum so that
// a flipped bit is refused at start rather than read as different data.
// The commit log (package commit) and the raft storage (package consensus)
// use it; each passes its own corruption error.
//
// # Testing
//
// durable_test.go checks sealing and opening; the corruption tests of
// packages commit (TestLogKeepsRecordsAndRefusesDamage) and consensus
// (FuzzOpenDisk, FuzzOpenLog) open damaged files through OpenBolt.
package durable

// Package messages holds every type that crosses the network: the runtime's
// [Envelope] and the messages of the protocols that ship with Troupe.
//
// # Usage
//
// Each type is declared in a .proto file under troupe/, at the path of its
// proto package (troupe/commit/v1/commit.proto declares troupe.commit.v1),
// and compiled into Go code committed in this folder. The path is the
// name the file is registered under in protobuf's process-wide registry:
// package-qualified, it cannot collide with a user's or a library's file
// (protoactor-go registers a bare gossip.proto). After editing a .proto
// file, run
//
//	go generate ./messages
//
// which needs protoc on the PATH (Debian: apt-get install protobuf-compiler)
// and builds protoc-gen-go from the version pinned in go.mod.
//
// A protocol's wire messages are ordinary protobuf messages; the runtime
// sends each as an [Envelope] with its full name (on the remote network, as
// an entry of a [Batch]), so any message type linked into the binary can be
// received; a receiver refuses an entry whose type its binary does not
// link (transport.ErrUnknownType) without decoding it. This package
// imports nothing of Troupe.
//
// # Concurrency
//
// Generated messages are plain values: safe to read from many goroutines,
// not to mutate while another goroutine reads them.
//
// # Testing
//
// Decoding of envelopes and batch entries from untrusted bytes is fuzzed in
// package transport.
package messages

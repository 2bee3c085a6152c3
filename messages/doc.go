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
// A protocol's wire messages are protobuf messages or plain Go structs.
// The runtime sends each as an [Envelope] with its wire name (on the remote
// network, as an entry of a [Batch]): a protobuf message's full name, or
// the name a struct type was registered under; a receiver refuses an entry
// whose type its binary neither links nor registered
// (transport.ErrUnknownType) without decoding it. This package imports
// nothing of Troupe.
//
// # Messages without protoc
//
// A struct type registered once with [Register] travels like a protobuf
// message, encoded as CBOR (RFC 8949, github.com/fxamacker/cbor), with no
// .proto file and no generated code:
//
//	type Ping struct{ N uint64 }
//
//	var _ = messages.Register[Ping]("pingpong.Ping")
//
// A protocol sends a *Ping (ctx.Send(peer, &Ping{N: 1})) and handles a
// *Ping (actors.OnMessage(ctx, func(ctx *actors.Context, from actors.NodeName, m
// *Ping) error {...})): like protobuf messages, struct messages are
// pointers. The name is a protobuf-style full name, the same on every
// node, never changed and never given to another type.
//
// Evolving a struct message: adding a field is safe (a node that does not
// know it skips it; one that does finds it zero in an older node's
// message); a field travels under its Go name, so renaming one in Go keeps
// the old name in a tag (Count uint64 `cbor:"N"`); a field's type does not
// change; a removed field's name is not reused for something else. See
// [Register].
//
// Decoding a struct message from the network is strict, as protobuf's is:
// bytes that are not one well-formed CBOR map, nest deeper than
// [MaxNesting], hold an array or map longer than [MaxElements], repeat a
// key, carry text that is not UTF-8 or a value of the wrong kind for its
// field are refused with an error naming the type and what is wrong.
//
// # Concurrency
//
// Generated messages are plain values: safe to read from many goroutines,
// not to mutate while another goroutine reads them; so are struct
// messages. [Register] and the lookups are safe for concurrent use.
//
// # Testing
//
// Decoding of envelopes and batch entries from untrusted bytes is fuzzed in
// package transport, decoding of struct messages here
// (FuzzStructUnmarshal); TestEvolutionAddingAField checks that two versions
// of a message decode each other's bytes.
package messages

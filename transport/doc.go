// Package transport moves envelopes between named nodes. It defines the
// [Network] and [Endpoint] seams and the envelope codec; the implementations
// live in sub-packages:
//
//   - transport/remote: protoactor remote over gRPC, for real clusters and
//     for in-process clusters on loopback;
//   - transport/sim: an in-process hub that injects latency, jitter, loss,
//     duplication, reordering and partitions from a seed, and counts every
//     message and byte.
//
// # Usage
//
// Nodes never call a Network directly: package actors attaches each node with
// an [Attachment], and each protocol sends through an [Outbox] of the
// [Endpoint] it gets back, flushed after every event. A network is best
// effort; reliable, in-order, exactly-once delivery is built by the runtime
// on top (see package actors).
//
// An outbox encodes each envelope when it is sent. The remote network
// carries what one protocol sends one node between two flushes as one
// [messages.Batch], whose entries [AppendMessage] and [AppendEnvelope]
// write and [NextEntry] reads; the sim network carries envelopes one by
// one, each encoded by [Encode].
//
// A payload is a protobuf message or a pointer to a struct registered
// with messages.Register (CBOR), named by its wire name ([Marshal],
// [MarshalPayload], [AppendMessage]); anything else is refused when sent
// (messages.ErrNotRegistered).
//
// Everything that arrives from the network passes [Validate] (for the
// envelope, or [NextEntry] for a batch entry) and is decoded against the
// registered structs and the protobuf registry ([FindType],
// [PayloadType.Decode]) before any protocol sees it; the errors name what
// is wrong and what is valid.
//
// # Concurrency
//
// Networks and endpoints are safe for concurrent use; an Outbox belongs to
// one goroutine. [Deliver] and [DeliverBatch] callbacks may be called from
// several goroutines at once and must not block.
//
// # Testing
//
// FuzzDecode feeds arbitrary bytes to [Decode] and [UnmarshalPayload],
// FuzzBatchEntries to [NextEntry], both seeded with protobuf and struct
// payloads; package messages fuzzes the struct decoder itself.
package transport

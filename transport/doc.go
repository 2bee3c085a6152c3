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
// an [Attachment] and sends through the [Endpoint] it gets back. A network is
// best effort; reliable, in-order, exactly-once delivery is built by the
// runtime on top (see package actors).
//
// Everything that arrives from the network passes [Validate] (for the
// envelope) and [UnmarshalPayload] (for the message) before any protocol sees
// it; both return errors that name what is wrong and what is valid.
//
// # Concurrency
//
// Networks and endpoints are safe for concurrent use. A [Deliver] callback may
// be called from several goroutines at once and must not block.
//
// # Testing
//
// FuzzDecode feeds arbitrary bytes to [Decode] and [UnmarshalPayload].
package transport

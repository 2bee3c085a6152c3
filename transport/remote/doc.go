// Package remote is the production [transport.Network]: protoactor remote
// (gRPC streams, batched per destination) between named nodes.
//
// # Usage
//
//	net, err := remote.New(remote.Config{Bind: "0.0.0.0:7000", Peers: map[string]string{"b": "10.0.0.2:7000"}})
//	node, err := actors.NewNode(actors.Config{Name: "a", Network: net})
//
// A [Network] keeps a directory from node names to addresses: nodes attached
// to the same Network register themselves (an in-process cluster on loopback
// needs no configuration), [Network.SetPeer] adds others, and membership
// fills it at run time. Identity is the node name; the address is transport
// detail and may change when a node restarts.
//
// Each attached node registers one protoactor process, "troupe", that the
// remote endpoint reader calls directly for each arriving batch; the
// batch's names are checked and its envelopes handed to the node, which
// enqueues them on the protocol's mailbox. No extra actor hop stands
// between the wire and the protocol.
//
// # Batches
//
// Nodes exchange one protobuf type, troupe.v1.Batch: the envelopes one
// protocol on one node sent to one node, in order, each encoded once, in a
// single buffer ([transport.AppendMessage], [transport.AppendEnvelope]),
// with the names "from/to/protocol" once per batch. A protocol's
// [transport.Outbox] fills one batch per destination and sends them on
// Flush (the runtime flushes when a handler returns) or when one reaches
// 64 KiB. protoactor carries a batch as one message: its per-message costs
// (a queue entry, a sender and target lookup, an envelope on each side, a
// type lookup and a decode) are paid once per batch, and the receiving
// protocol decodes each payload straight from the batch's bytes
// ([transport.NextEntry]). The inbox parses a sender's names once and
// recognises their bytes afterwards.
//
// # Bad input
//
// protoactor's endpoint reader trusts what it reads: a message whose type
// name this binary does not link, or whose table numbers point past its
// batch's tables, panics the reader's goroutine and with it the process. A
// gRPC stream interceptor checks every batch before the reader sees it:
// such a message is refused (logged and counted by the node) and the
// stream goes on ([transport.ErrUnknownType], [transport.ErrMalformed]). So
// a node of a newer version, sending a type an older one does not know,
// cannot crash it. Malformed names or envelopes are refused by the inbox
// and by the receiving protocol, which drops the rest of a batch it cannot
// walk.
//
// The gRPC server accepts messages up to 256 MiB, not gRPC's default 4 MiB:
// protoactor's writer puts up to 1000 queued batches in one gRPC message,
// and two large envelopes queued together broke the stream. More than 60
// envelopes of the 4 MiB limit queued to one node at once still do (the
// queued messages are lost; reliable sends are sent again).
//
// With Config.TLS ([security.MutualTLS]) every connection is mutual TLS
// against the cluster's CA: the gRPC server refuses a client without a
// certificate the CA signed, a node refuses such a server, and both log
// why, with the peer's address ([security.ErrPeerRefused]); a handshake
// that fails otherwise (the client refused this node's certificate) is
// logged by the server too.
//
// # Concurrency
//
// A Network and its endpoints are safe for concurrent use; an Outbox belongs
// to one goroutine. DeliverBatch is called on protoactor's gRPC reader
// goroutines, one per inbound connection.
//
// # Testing
//
// remote_test.go runs two nodes on loopback, tls_test.go three with
// certificates of two CAs, guard_test.go speaks protoactor's wire protocol
// to a node as a foreign peer would; the runtime's tests and the
// BenchmarkRemoteDelivery benchmark in package actors run whole nodes on it.
package remote

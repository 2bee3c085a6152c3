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
// remote endpoint reader calls directly for each arriving envelope; the
// envelope is validated and handed to the node, which enqueues it on the
// protocol's mailbox. No extra actor hop stands between the wire and the
// protocol.
//
// On the wire, an envelope to another node leaves its names (sender,
// receiver, protocol, payload type) empty: they travel as the Id of the
// protoactor sender PID, "from/to/protocol/type", which protoactor sends
// once per batch for all messages of the same route. The inbox parses it
// once per batch and puts the names back before validating the envelope, so
// receivers see whole envelopes and byte counts are those of whole
// envelopes ([transport.Size]). Compared with names in every envelope, this
// saves four string allocations and their UTF-8 checks per message on the
// receiving side, and the names' bytes on the wire (48 bytes a message in
// BenchmarkRemoteDelivery).
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
// A Network and its endpoints are safe for concurrent use. Deliver is called
// on protoactor's gRPC reader goroutines, one per inbound connection.
//
// # Limits
//
// protoactor's endpoint reader decodes with the global protobuf registry and
// does not survive a message whose type name is unknown to it; nodes of one
// cluster only ever send troupe.v1.Envelope, so this matters only for foreign
// peers, which mutual TLS (Config.TLS) keeps out.
//
// # Testing
//
// remote_test.go runs two nodes on loopback, tls_test.go three with
// certificates of two CAs; the runtime's tests and the
// BenchmarkRemoteDelivery benchmark in package actors run whole nodes on it.
package remote

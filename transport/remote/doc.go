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
// A flush does not hand protoactor the batch itself but a token for it
// (the protocol's stream to the address): protoactor's endpoint writer
// turns the token into the Batch when it gets to it, so what further
// flushes add meanwhile joins the same Batch, up to 64 KiB. One message
// per event, as most protocols send, thus costs protoactor one message per
// writer turn under load, not one per event; an idle writer takes each
// flush at once. The wire carries the same troupe.v1.Batch either way. A
// token protoactor drops (a dead letter) drops its batch, and a broken
// connection drops the queued batches of the address, as protoactor drops
// what its writer held.
//
// # The node port
//
// protoactor's gRPC server trusts what it reads, and a panic on one of its
// goroutines ends the process: its ListProcesses and
// GetProcessDiagnostics panic ("implement me"); its endpoint reader
// indexes a batch's tables with the numbers each message carries, decodes
// each message by the type name the sender wrote, forwards a message to
// whatever address its target names, and acts on protoactor's system
// messages (an actor.Terminated without its actor panics it). A gRPC
// unary and a stream interceptor (guard.go) stand in front of it and let
// through only what Troupe sends:
//
//   - one method, /remote.Remoting/Receive (the stream protoactor's
//     endpoint writers open); every other call is refused with
//     codes.Unimplemented, and a panic of a served call ends that call
//     with codes.Internal, not the process;
//   - on that stream, a ConnectRequest with a ServerConnection (what an
//     endpoint writer sends first) and MessageBatches; a ClientConnection,
//     an empty ConnectRequest, a ConnectResponse, a DisconnectRequest or an
//     empty message is dropped;
//   - in a batch, only troupe.v1.Batch messages, encoded by protobuf
//     (serializer 0) and well formed, for this node's inbox process
//     ("troupe" at the node's own address), without a sender or request
//     ids. Every protoactor system or control message (actor.Terminated,
//     Watch, Unwatch, Stop, PoisonPill, remote.ActorPidRequest, …) and
//     every other type is dropped: Troupe neither watches nor spawns
//     across nodes. A type this binary does not link (a newer node's)
//     is refused with [transport.ErrUnknownType], the rest with
//     [transport.ErrMalformed];
//   - with mutual TLS, only batches whose sender node (the "from" of the
//     batch's names) is the node the peer's certificate names
//     ([security.NodeName], the common name). Any certificate of the
//     cluster's CA passes the handshake; it speaks only for its own node.
//     Attach refuses a node whose certificate names another; a Network
//     hosting several nodes over mutual TLS gives each its own
//     certificate through Config.NodeTLS.
//
// A node that runs protoactor's actor cluster (package grains) installs an
// [ActorMessages] hook with [Network.AdmitActorMessages]; then a message
// that is not a Troupe batch for the inbox is checked by the guard — table
// numbers and senders in range, protobuf, for this node's own address, a
// type the binary links that decodes, none of protoactor's actor.* or
// remote.* control messages but actor.DeadLetterResponse — and passed on
// only if the hook admits it (TestActorMessagesHook).
//
// A refused message or call is logged with the peer's address and, with
// mutual TLS, its certificate's node, and a message is told to the node's
// Attachment.Reject, which counts it; the stream goes on. Lines of one kind
// beyond 10 per 10 seconds per node are counted and reported as one
// ("… (N similar suppressed)", [security.LogLimiter]), also when the node
// closes. Malformed names or envelopes inside a well-formed batch are
// refused by the inbox and by the receiving protocol, which drops the rest
// of a batch it cannot walk.
//
// Without TLS nothing ties a peer to a name: anyone who reaches the port
// can send as any node. Use mutual TLS wherever the port is reachable by
// others.
//
// The gRPC server accepts messages up to 64 MiB, not gRPC's default 4 MiB,
// and protoactor's writer puts at most 250 queued batches in one gRPC
// message (not its default 1000): two large envelopes queued together
// broke the default, and a flood of 64 KiB batches is 16 MiB a message.
// 64 MiB bounds what a peer can make a node buffer per message, and holds
// a flood with a dozen envelopes of the 4 MiB limit among it; more queued
// to one node at once still break the stream (the queued messages are
// lost; reliable sends and raft's messages are sent again). A larger
// message ends its
// stream with codes.ResourceExhausted, unread (TestOversizedMessageIsRefused).
//
// With Config.TLS ([security.MutualTLS]) every connection is mutual TLS
// against the cluster's CA: the gRPC server refuses a client without a
// certificate the CA signed, a node refuses such a server, and both log
// why, with the peer's address ([security.ErrPeerRefused]); a handshake
// that fails otherwise (the client refused this node's certificate) is
// logged by the server too. A dialling node holds the server to its name
// as well: the server's certificate must name a node the directory has at
// the address dialled, or the connection is refused and logged, so that a
// member listening at an address given to another node does not receive
// that node's messages. The check is made once per connection, and
// protoactor keeps one connection per address.
//
// # Dialling
//
// protoactor dials a peer when the first batch for it is sent, once
// (remote.Config.MaxRetryCount 1, bounded by 2 s), and sleeps 2 s after a
// failed attempt, inside its actor, which its shutdown waits for. So an
// endpoint lets protoactor dial only a peer it has no reason to think
// dead: when a connection breaks or cannot be made, the peer is down
// (its batches dropped, as protoactor drops them) and probed with a TCP
// connect of the endpoint's own, at once and then backing off from 100 ms
// to 5 s, until a probe connects; when its address leaves the directory
// (SetPeer, RemovePeer: membership says the node failed or left)
// protoactor's connection to it is closed and it is no longer dialled.
// Close cancels the probes. redial.go; TestFailedMemberIsNotRedialled,
// TestStopWithADeadPeer, BenchmarkStopWithADeadPeer.
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
// certificates of two CAs, guard_test.go and hardening_test.go speak
// protoactor's wire protocol to a node as a foreign or hostile peer would
// (unary calls, system messages, a certificate sending as another node)
// and check that it refuses each and goes on delivering; fuzz_test.go
// fuzzes a Receive stream's messages, seeded with batches as protoactor's
// writer sends them, through the guard, protoactor's decoding and the
// inbox (FuzzReceive), and the guard's walk of a batch against protobuf
// (FuzzBatchNames). The runtime's tests and the BenchmarkRemoteDelivery
// benchmark in package actors run whole nodes on it. Tests that start
// protoactor remotes skip under -race (actortest.SkipRemoteUnderRace).
package remote

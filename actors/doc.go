// Package actors is Troupe's runtime: it runs each distributed protocol as
// a supervised protoactor actor on a [Node], so protocol code is a small
// piece of state plus handlers and never locks.
//
// # Usage
//
// A protocol has a name and an Init that registers typed handlers:
//
//	func (p *Bully) Init(ctx *actors.Context) error {
//		actors.OnMessage(ctx, p.onElection)        // a message from another node
//		actors.OnRequest(ctx, p.onGetLeader)       // local request → reply
//		actors.OnTell(ctx, p.onStepDown)           // a local command, by name
//		actors.OnPost(ctx, p.onProbeDone)          // its own post to itself
//		actors.OnNotification(ctx, p.onMemberDown) // local one-to-many
//		actors.OnTimer(ctx, p.onTimeout)           // ctx.After / ctx.Every
//		actors.OnReconfigure(ctx, p.onConfig)      // a new Config at run time
//		return nil
//	}
//
// Local input comes in three kinds, each type one kind to a protocol
// (registering a type with two of them panics): commands sent to the
// protocol by name ([OnTell]: [Node.Tell], [Context.Tell], [Ref.Tell]), the
// protocol's own posts to itself ([OnPost]: [Context.Post], [Ref.Post]
// on the Ref of [Context.Ref]; private to it), and notifications
// published on the node ([OnNotification]: [Context.Notify],
// [Node.Publish], runtime events). A Tell or Post of a type the protocol
// has no handler of that kind for fails at once with [ErrNoHandler],
// saying what it takes; a Post through a Ref from [Node.Ref] fails with
// [ErrNotOwner].
//
// A network message is a protobuf message or a plain Go struct registered
// once under a stable wire name with messages.Register (CBOR; no protoc,
// no generated code). Struct messages are sent and handled as pointers:
//
//	type Ping struct{ N uint64 }
//
//	var _ = messages.Register[Ping]("pingpong.Ping")
//
//	actors.OnMessage(ctx, func(ctx *actors.Context, from actors.NodeName, m *Ping) error {
//		return ctx.Send(from, &Ping{N: m.N + 1})
//	})
//
// [OnMessage] panics (failing [Node.Start]) for a type that is neither;
// [Context.Send] and [Context.SendReliable] refuse one with
// messages.ErrNotRegistered. Adding fields to a struct message is safe
// between versions; the rules for evolving one are in package messages.
//
// A request type names its reply type by embedding [Returns] (type
// GetLeader struct{ actors.Returns[Leader] }), so requests are typed at
// compile time. [OnRequest] answers by returning; [OnRequestDeferred] hands
// the handler a [Reply] to answer once, now or from a later event (a
// commit, a vote, a timer); what an incarnation leaves unanswered is
// answered [ErrUnanswered] when it ends. A [Context] whose incarnation
// ended fails with [ErrDeadContext] and counts the misuse.
//
// Handlers send with [Context.Send] (best effort) or [Context.SendReliable]
// (exactly once, in order, while both nodes live), on other channels with
// [Context.SendOn] and [Context.Broadcast] (see Channels), publish with
// [Context.Notify], ask other protocols with [Request] (the reply arrives as
// a later event), and read time and randomness from [Context.Now] and
// [Context.Rand]. Code outside protocols uses [Node.Tell] (or, to send one
// protocol many messages, a [Ref] from [Node.Ref]), [Call], [Observe] and,
// to stand in for a protocol's announcement, [Node.Publish].
//
// A value larger than an envelope (4 MiB: a snapshot, a job's input) goes
// as a stream: [Context.SendStream] sends a head describing it and the
// value, up to StreamConfig.MaxSize (1 GiB by default), in chunks with a
// window of bytes in flight, cumulative acks and go-back-N after a
// timeout, so a connection broken mid-stream resumes where the receiver
// is; the [OnStream] handler of the head's type gets the whole value once,
// and the sender's done callback learns the outcome (nil, or
// [ErrStreamRefused], [ErrStreamStalled], [ErrStreamAborted]). Partial
// streams are capped per peer and dropped when idle; ProtocolStats.Streams
// counts them ([StreamStats]; docs/streams.md).
//
// Nodes are addressed by [NodeName] and protocols by [ProtocolName], two
// types, so that passing one where the other is due does not compile:
// Send takes a NodeName, Tell a ProtocolName. Each protocol package
// declares its name as const Name actors.ProtocolName = "...".
//
// A configuration change at run time is an event too: [Node.Reconfigure]
// hands a protocol its new configuration, its [OnReconfigure] handler
// applies it or refuses it with an error (the protocol keeps the old one),
// and the runtime hands the accepted configuration again to every later
// incarnation after a supervised restart.
//
// # Channels
//
// A protocol's messages to other nodes travel on one of three channels
// ([Channel]):
//
//   - [Stream], the node's Network and the default: ordered per sender,
//     batched, up to transport.MaxEnvelopeSize per message; the channel of
//     [Context.Send] and of [Context.SendReliable] (which always uses it).
//   - [Datagram]: one best-effort packet per message, which may be lost,
//     duplicated or reordered, small (the packet service's datagram
//     limit). [Context.SendOn](Datagram, to, m) sends one; a protocol that
//     calls [Context.UseChannel](Datagram) in Init makes its Send use
//     datagrams for that incarnation (every incarnation runs Init, so
//     calling it there makes it hold for the protocol's life).
//   - [Gossip]: epidemic broadcast to this protocol on every other member
//     ([Context.Broadcast]), each handler getting the message once with
//     high probability within O(log N) gossip rounds, small (the
//     broadcast limit). It is refused as a channel for Send and SendOn
//     ([ErrWrongChannel]): it has no single destination.
//
// Datagrams and gossip go through the node's packet service
// (transport.Packets), which package membership installs with
// [Node.SetPackets]; without one, sends on them fail with
// transport.ErrNoPackets. A datagram to the node itself goes straight to
// the protocol's mailbox. Messages that arrive by any channel reach the
// same [OnMessage] handlers with the sender's node name, and
// [Context.Arrived] tells which channel the one being handled came by.
// Arriving datagrams and broadcasts are checked as network messages are
// (see [Node.SetPackets] for what is refused); refusals count in
// NodeStats.Rejected. ProtocolStats.Channels counts each channel's
// messages and bytes in and out, the packets the service put on the wire
// (relayed gossip included) and the drops ([ChannelStats]);
// docs/channels.md says which channel to choose.
//
// # Concurrency
//
// One event at a time: a protocol's handlers, Init and Stop run on its
// mailbox, never concurrently, so its state needs no lock. A [Context] must
// not leave them. A handler must not block: long work belongs in a goroutine
// the protocol owns, which reports back through [Context.Ref] ([Ref.Post] is
// safe from any goroutine).
//
// Each protocol is a protoactor actor on a mailbox of Troupe's own, with
// protoactor's semantics (system messages first, suspension across a
// restart, a bounded turn before yielding): senders append under a lock,
// the protocol takes what waits at once and hands Troupe's messages to its
// handlers without going through protoactor's actor context
// (docs/architecture.md, "Measurements").
//
// A message is encoded when it is sent, so it may be reused or changed
// afterwards. What a handler sends leaves when the handler returns (or
// sooner: at [Context.Flush], or when 64 KiB wait for one node): on the
// remote network,
// everything one protocol sends one node during one event travels as one
// batch, so a handler that sends many messages costs protoactor one message
// per destination, and what later events send while protoactor's writer
// has not taken that batch yet joins it (docs/architecture.md, "Networks").
//
// Timers are self-messages; a cancelled timer never fires, even when its
// message is already queued. A panic or a returned error restarts the
// protocol (a fresh value from its [Factory], then Init) after a doubling
// backoff; more than SupervisionConfig.MaxRestarts failures within Window
// stop it. Both publish events ([ProtocolRestarted], [ProtocolStopped]),
// log, and count. A request handler's error is its reply, not a failure.
//
// Except on remote input: a panic in the handler of a message from another
// node (an [OnMessage] handler) refuses that message. The runtime recovers
// it, counts it (ProtocolStats.Refused, also in Unhandled), logs it with the
// sender's name (rate-limited, with the stack), and the protocol carries on
// with its state and its next message: a node that sends what a handler
// cannot take cannot restart, or stop, another node's protocol. An error
// such a handler returns is the protocol's own verdict, and restarts it.
//
// [Node.Stop] returns when every goroutine the node owns has exited.
//
// # Testing
//
// Package actors/actortest waits for conditions with deadlines, runs a test
// on virtual time, and offers a manual clock; package cluster/clustertest
// starts whole clusters (cluster.Local) in a test (from package
// actors_test). Run protocols on transport/sim to inject loss,
// duplication, reordering and partitions from a seed and to count messages
// and bytes.
package actors

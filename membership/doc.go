// Package membership tells every node who else is in the cluster, with SWIM
// (hashicorp/memberlist: suspicion, Lifeguard, push-pull, an AES keyring).
//
// A [Membership] is one node's view: [New] starts SWIM on a UDP/TCP address
// (or on a given transport, such as the sim hub's), [Membership.Join] joins
// through seed addresses, retrying with backoff, and fails at once for a
// name already taken by a live member, gossip keys that differ from the
// seeds' ([ErrKeyMismatch]), or TLS certificates the seeds refuse or that
// the node refuses ([ErrCertificate]: with Config.TLS, SWIM's streams are
// mutual TLS against the cluster's CA, and a member is held to the name
// its certificate gives where it speaks for itself on them; identity.go
// says what is and is not checked, Stats.RefusedPeers counts refusals). [Membership.Leave] says goodbye; [Membership.Shutdown] just stops,
// and the others report the node failed.
//
// Every change of the view is an [Event] — [MemberJoined], [MemberSuspect],
// [MemberFailed], [MemberLeft], [MemberUpdated] — with the member's name,
// SWIM incarnation and generation (which changes when the node restarts).
// SWIM's whole cycle is told: a suspicion, this node's own or learnt by
// gossip (MemberSuspect.ByGossip), its refutation (MemberUpdated.Refuted,
// with the higher incarnation) or its confirmation (MemberFailed); swim.go
// reads the transitions memberlist tells no delegate from its member
// table. [NewCollector] exports the troupe_swim_* series to Prometheus.
// [Attach] runs the membership as the node's "membership" protocol: it
// publishes each event as a node notification of its own type, so a
// protocol reacts to membership like to any other notification, and it
// answers [ViewRequest] with the current [View]:
//
//	actors.OnNotification(ctx, func(ctx *actors.Context, ev *membership.MemberFailed) error {
//		return p.forget(ev.Member.Name)
//	})
//
// A protocol that keeps a member set calls [Watch] once instead: it gets
// the view first, then each event with the view after it, in order, with
// no event lost or told twice between the view and the subscription (the
// view the membership protocol answers is the one its notifications have
// told). [OnEvent] gives the events alone:
//
//	err := membership.Watch(ctx, func(ctx *actors.Context, ch membership.Change) error {
//		if ch.Initial() {
//			return p.start(ch.View.LiveNames())
//		}
//		if _, failed := ch.Event.(*membership.MemberFailed); failed {
//			return p.forget(ch.Event.Of().Name)
//		}
//		return nil
//	})
//
// [Membership.FeedPeers] keeps transport/remote's directory of node
// addresses in step with the view, and [Provider] plugs the node's
// membership into a protoactor-go cluster as its ClusterProvider (package
// grains starts it), so protoactor's member list and grain placement
// follow SWIM without a second memberlist.
//
// With Config.Memory a node keeps the members it knows in a file (node run:
// <data dir>/members.json) and, when it starts again, joins them as well
// as its seeds, and [Membership.FeedPeers] gives their remote addresses
// before gossip has found them: a restarted node reaches its peers at
// once. [LoadMemory] refuses a file that is too large, not its format,
// another node's or naming an invalid member ([ErrMemory]); the node then
// starts without memory.
//
// Gossip is input from the network: a member whose name is not a node name
// (transport.ValidateName) is refused as it arrives — it never enters the
// view nor any event — and counted (Stats.RefusedMembers). memberlist's log
// lines, one per garbage packet or refused stream, are rate-limited: one
// line of each kind and ten lines in all per 10 s, the next line of a kind
// saying how many like it were held back (Stats.LogSuppressed).
//
// Timings start from a preset — "lan" and "wan" are memberlist's, "local"
// is tuned for nodes on one host and scales with the nodes sharing its
// CPUs ([LocalTiming], Config.Colocated) — and every timing can be
// overridden ([Timing]). docs/membership.md has the measurements and the design
// choices.
//
// # Datagrams and gossip
//
// [Membership.Packets] is the node's transport.Packets: a best-effort
// packet service beside its gRPC network, over memberlist's own UDP
// socket (or the sim hub's memberlist transport, whose faults then apply)
// and encrypted with the gossip keys when Config.Keys is set.
//
// A datagram (SendDatagram) is one memberlist user packet to one live
// (alive or suspect) member, sent with memberlist's SendBestEffort: a
// frame of a kind byte, the protocol's name (length-prefixed) and the
// envelope. It may be lost, duplicated or reordered; nil from
// SendDatagram means sent, never delivered. Its limit (Limits) keeps the
// whole packet within memberlist's UDPBufferSize (1400 bytes in every
// preset), counting the frame's kind byte, memberlist's user-message
// byte, its 5-byte checksum, its label and its largest encryption
// overhead (45 bytes): 1393 bytes of envelope without gossip keys, 1348
// with. A
// destination that is not a live member, or this node, is
// transport.ErrUnknownNode.
//
// A broadcast (Broadcast) spreads to every member by epidemic gossip,
// piggybacked on SWIM's packets (its gossip rounds, probes and acks)
// through a memberlist TransmitLimitedQueue: each frame is handed out
// RetransmitMult·ceil(log10(N+1)) times (N the live members), and every
// member that receives a broadcast for the first time delivers it and
// queues the same frame to relay it as many times (as serf does with its
// user events), so it reaches every live member in O(log N) gossip rounds
// with high probability — not certainly: a member that misses every copy
// (loss, a partition, a full queue) never gets it, and nothing retries.
// The frame carries the origin's name, a boot nonce (random, new each
// time the Membership is created), a sequence number per origin and run,
// and the protocol. A receiver delivers each (origin, nonce, sequence)
// once: it remembers per origin a sliding window of
// Broadcasts.DedupeWindow sequence numbers for the current and the
// previous nonce (so a restarted origin is delivered again, and its
// previous run's broadcasts still in flight are not delivered twice); a
// copy older than the window is dropped as seen. Order is not kept. A
// node never delivers its own broadcasts, nor any frame naming it as
// origin. The envelope is at most [BroadcastLimit] (512) bytes, so that a
// frame with the longest names (1040 bytes with memberlist's framing)
// leaves at least 313 bytes of a 1353-byte gossip packet (UDPBufferSize
// less memberlist's compound header and encryption) to SWIM's own
// messages, and about 800 with names of ordinary length; memberlist hands
// out its own messages first, and a frame waits for a packet with room.
//
// Memory is bounded: the queue holds Broadcasts.QueueLimit frames (own
// and relayed; beyond, the ones transmitted most are pruned, and the
// handler's Dropped is told of each), de-duplication remembers
// Broadcasts.Origins origins (the least recently heard from evicted; a
// broadcast of an evicted origin still in flight may then be delivered
// again), and every frame is bounded by the limits above: about 1 MiB of
// frames and 256 KiB of windows by default, Origins·DedupeWindow/4 bytes
// of windows at most 64 MiB whatever the settings.
//
// Security: datagrams and broadcasts are authenticated only by the gossip
// key. Any holder of the key can send datagrams, claim any origin, nonce
// and sequence number (and so suppress a real origin's next broadcasts by
// claiming their numbers first, or replay old ones under a new nonce),
// and the envelope's sender is whatever it says: a protocol that needs to
// know who sent a message uses the stream (mutual TLS). Without keys,
// anyone who can reach the UDP port can. What arrives is refused unless
// it is a well-formed frame — unknown kind, truncated, oversized, names
// that are not node or protocol names — and counted by reason
// (troupe_swim_user_packets_refused_total); the handler gets a copy of
// the envelope, not yet validated, from memberlist's packet goroutine,
// and must not block. Before the first Handle, packets that arrive are
// counted (reason no_handler) and dropped; broadcasts are still relayed.
// The handler's Transmitted is told of each datagram sent and of each
// transmission of a broadcast frame (own or relayed: one call per frame
// per packet), with the frame's bytes plus memberlist's user-message byte
// — before memberlist's per-packet checksum, compression, label and
// encryption.
package membership

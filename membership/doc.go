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
package membership

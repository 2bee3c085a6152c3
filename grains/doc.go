// Package grains hosts protoactor-go virtual actors (grains) on Troupe
// nodes: protoactor's actor cluster, on each node's own actor system,
// remote and membership.
//
// A grain is an actor with an identity ("apples") and a kind ("counter"):
// one activation per identity in the whole cluster, made on first call by
// the member that owns the identity — rendezvous hashing of the identity
// over the live members that host the kind, as protoactor's disthash
// lookup does — and made again elsewhere when that member fails or a new
// owner joins.
//
// # Usage
//
// Kinds are Go code, registered before Start; each node announces their
// names in its membership:
//
//	kind := cluster.NewKind("counter", actor.PropsFromProducer(newCounter))
//	gcfg := grains.Config{Kinds: []*cluster.Kind{kind}}
//	m, _ := membership.New(membership.Config{Name: name, Address: node.Address(), Kinds: gcfg.KindNames(), …})
//	_ = m.Join(ctx)
//	_, _ = membership.Attach(node, m)
//	g, err := grains.Start(node, network, gcfg) // network: the node's transport/remote.Network
//	defer g.Stop()
//	reply, err := g.Request(ctx, "apples", "counter", &pb.CounterAdd{Delta: 1})
//
// `node run` starts it on every node (with no kinds: the stock binary
// hosts none, but can call the grains of nodes that do); examples/grains
// runs three nodes hosting a counter.
//
// # What is shared
//
// The actor cluster is protoactor's cluster object (cluster.Cluster, for
// its own API and generated grain clients: [Grains.Cluster]) put together
// on what the node has, not started by cluster.StartMember, which would
// start a second remote, protoactor's gossip and its pub-sub:
//
//   - the node's actor system and protoactor remote (its port, its TLS);
//   - the node's SWIM membership: membership.Provider runs the
//     "actor-cluster" protocol, which follows the membership protocol
//     (membership.Watch) and hands protoactor's member list the live
//     members with their kinds. No memberlist of its own, no protoactor
//     gossip: a member is in the actor cluster exactly while Troupe's
//     view holds it live. Member Ids: see membership.Provider;
//   - this package's identity lookup and placement ("grain-placement", an
//     actor whose children are the node's grains), in the place of
//     disthash's, which spawns without bound, answers nil to an unknown
//     kind, and panics (restarting without its grains) on a Terminated it
//     does not know.
//
// # Failure
//
// When a member fails or leaves, SWIM's view drops it, the provider drops
// it from protoactor's list (and protoactor forgets the activations cached
// there), and the next request for one of its grains activates the grain
// on the member that owns it now. Its state is not moved: a grain starts
// afresh (a grain that must keep state stores it, e.g. in the raft
// group's key-value store). When a member joins, the grains it now owns
// stop where they were and start on it at their next request. A request
// waiting for a reply from a member that leaves the topology ends at once
// and is tried again by [Grains.Request] until its deadline; the time to
// move is the membership's detection time (about a second with the local
// preset, 5–10 s with lan). Grains are not passivated: one stays active
// until it stops itself, moves, or its node stops.
//
// # The node port
//
// A node's port passes on Troupe's batches only, unless Start installed
// the actor cluster's admission (transport/remote.AdmitActorMessages).
// Then it also takes, after the guard's own checks (in-range tables,
// protobuf, this node's address, a type this binary links that decodes,
// never one of protoactor's actor.* or remote.* system messages but
// actor.DeadLetterResponse):
//
//   - a cluster.ActivationRequest for "grain-placement", naming a sender to
//     answer, a kind this node hosts and an identity of 1 to
//     Config.MaxIdentity bytes of UTF-8;
//   - messages for a grain ("grain-placement/…"): its kind's types and
//     cluster.GrainRequest, no other cluster.* type;
//   - replies to this node's requests ("future$…").
//
// Everything else — other processes (the node's protocols, protoactor's
// eventstream), forged or unknown kinds, empty or oversized identities —
// is refused, logged with the peer's address (rate limited) and counted
// as rejected (actors.NodeStats.Rejected). The placement holds at most
// Config.MaxActivations grains, and each grain's mailbox
// Config.Mailbox messages, dropping the oldest beyond.
//
// # Concurrency
//
// Start once per node, Stop once (again does nothing); Request and Active
// are safe from any goroutine (Request blocks: not from a protocol's
// handler). With mutual TLS on the node port, any member (a certificate
// of the cluster's CA) may call and activate grains; replies are taken
// only for requests this node waits for.
//
// # Testing
//
// grains_test.go runs clusters on loopback: requests from every node,
// mutual TLS, refusals of bad requests, a hostile protoactor peer's
// forged messages, and the activation bound. refute_test.go cuts SWIM
// (over the sim hub, the node port over loopback) and heals it: the
// member each side declared failed hosts grains again. examples/grains
// shows a grain moving; bench_test.go measures a request. The tests of one node run under -race too; those of
// several protoactor remotes in one process skip under it, as every such
// test does (actortest.SkipRemoteUnderRace), and the example is built
// without -race only.
package grains

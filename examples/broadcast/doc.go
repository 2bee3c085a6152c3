// Package broadcast is the GFDS draft's own example protocol, written as
// the draft describes it: an application asks for a broadcast with a
// BroadcastRequest, the protocol floods a BroadcastMessage to its
// neighbours, each node delivers every message once with a DeliverReply
// notification, neighbours come and go through NeighbourUp and
// NeighbourDown notifications, and a periodic GarbageCollectTimer forgets
// old message ids. BroadcastMessage is a plain Go struct registered with
// messages.Register: the protocol needs no .proto file.
//
// Flooding over reliable links: the origin sends to each neighbour, and each
// node forwards a message it sees for the first time to every neighbour but
// the one it came from. In a full mesh of N nodes a broadcast costs exactly
// (N-1)² messages, whichever copy reaches a node first. (Skipping the
// origin too saves a message when a forward arrives before the origin's
// own copy, which made the cost depend on the scheduling.)
package broadcast

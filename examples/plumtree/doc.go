// Package plumtree is epidemic broadcast trees (Leitão, Pereira and
// Rodrigues, "Epidemic Broadcast Trees", SRDS 2007) written as the paper
// gives it, on Troupe's datagram channel.
//
// Each node keeps a few eager peers, to which it pushes every new message
// (GOSSIP), and a few lazy peers, to which it only announces the ids it has
// (IHAVE, batched every LazyInterval). A node that receives a message twice
// tells the second sender to stop pushing to it (PRUNE), so the eager
// edges shrink to a spanning tree after the first broadcasts; a node that
// hears of a message it lacks waits Timeout for it, then asks an announcer
// for it and makes that edge eager (GRAFT), which repairs the tree after a
// failure or a lost datagram. It grafts the announcers in turn, each
// Timeout, and gives up after 16 grafts (a message its announcers no
// longer keep, or a forged IHAVE).
//
// Every message is a datagram (actors.Datagram, chosen in Init with
// UseChannel): small, one packet, possibly lost; the IHAVE/GRAFT repair
// makes up for the losses, so no acknowledgement or retransmission is
// needed. A payload too large for a datagram goes on the stream. Peers come
// from the membership (membership.Watch), drawn at random as HyParView's
// active view would be, and links are symmetric: a node tells the peers it
// picks (Join), which take it as a lazy peer, so that a node nobody picked
// still hears of every message. (Without it, views that evicted peers to
// stay small left a node out of every view at 10% loss, now and then.)
//
// The package's tests compare it on the simulated network with flooding
// (examples/broadcast) and with the gossip channel (actors.Context.Broadcast)
// in messages and bytes per broadcast; docs/channels.md has the figures.
package plumtree

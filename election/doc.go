// Package election chooses one leader among the live nodes.
//
// The contract every algorithm fulfils is [Elector]: a protocol named
// "election" that publishes [LeaderChanged] on its node and answers
// [LeaderRequest]. Protocols that need a leader subscribe to LeaderChanged
// (actors.OnNotification) or ask with a [LeaderRequest]; they never depend on
// the algorithm.
//
// # Usage
//
// [New] starts the elector [Config].Elector names — [BullyElector] (the
// default) or [RaftElector] — and returns [Config.Validate]'s error:
//
//	f, err := election.New(election.DefaultConfig())
//	node.Start(f) // on every node, after membership.Attach
//	l, err := actors.Call(ctx, node, election.Name, election.LeaderRequest{})
package election

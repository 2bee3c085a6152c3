// Package election chooses one leader among the live nodes.
//
// The contract every algorithm fulfils is [Elector]: a protocol named
// "election" that publishes [LeaderChanged] on its node and answers
// [LeaderRequest]. Protocols that need a leader subscribe to LeaderChanged
// (actors.OnNotification) or ask ([Ask], [Current]); they never depend on
// the algorithm.
package election

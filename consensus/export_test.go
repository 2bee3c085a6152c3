package consensus

// ForgetVoteOnRestart breaks cfg on purpose: a node restarted from its data
// dir forgets whom it voted for in its term, so it may vote twice in one
// term and let two leaders be elected in it. For the test that shows the
// simulation catches such a bug.
func ForgetVoteOnRestart(cfg *Config) { cfg.forgetVote = true }

package consensus

import "github.com/troupe-dev/troupe/actors"

// ForgetVoteOnRestart breaks cfg on purpose: a node restarted from its data
// dir forgets whom it voted for in its term, so it may vote twice in one
// term and let two leaders be elected in it. For the test that shows the
// simulation catches such a bug.
func ForgetVoteOnRestart(cfg *Config) { cfg.forgetVote = true }

// Crash is a notification that makes the raft protocol of NewCrashable
// panic: a supervised restart, for the tests of what survives one.
type Crash struct{}

// NewCrashable is New(cfg) with a handler of Crash: the test's way to
// restart the protocol, since no input of the product's makes it panic.
func NewCrashable(cfg Config) actors.Factory {
	return func() actors.Protocol { return crashable{&Raft{cfg: cfg}} }
}

type crashable struct{ *Raft }

func (c crashable) Init(ctx *actors.Context) error {
	if err := c.Raft.Init(ctx); err != nil {
		return err
	}
	actors.OnTell(ctx, func(*actors.Context, Crash) error { panic("consensus test: Crash") })
	return nil
}

// HookWrites makes hook run before each batch of disk writes of every
// node, on the node's writer goroutine, with the node's name: a test holds
// a node's disk by blocking in it.
func HookWrites(cfg *Config, hook func(node actors.NodeName)) { cfg.writeHook = hook }

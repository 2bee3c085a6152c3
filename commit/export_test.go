package commit

import "github.com/troupe-dev/troupe/actors"

// Step is a point of the protocol where a test may crash a node.
type Step = step

// The steps, for the crash tests.
var (
	CoordinatorSteps = []Step{stepBegin, stepPending, stepPrepareSentOne, stepPrepareSent, stepVotesIn,
		stepDecided, stepDecisionSentOne, stepDecisionSent, stepAcked}
	ParticipantSteps = []Step{stepPrepareReceived, stepPrepared, stepVoteLogged, stepVoted,
		stepDecisionReceived, stepApplied, stepAckSent}
	StepPending = stepPending
)

// WithHook returns cfg with a fault-injection hook: it runs at every step
// of every transaction, and a true result halts the protocol there.
func WithHook(cfg Config, h func(s Step, node actors.NodeName, tx string) bool) Config {
	cfg.hook = h
	return cfg
}

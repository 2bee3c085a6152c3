package election

import (
	"errors"
	"fmt"
	"time"

	"github.com/troupe-dev/troupe/actors"
)

// ErrInvalidConfig is wrapped by every error of Config.Validate and
// BullyConfig.Validate.
var ErrInvalidConfig = errors.New("election: invalid config")

// The electors, the values of Config.Elector.
const (
	BullyElector = "bully" // Bully on live membership: no other protocol needed
	RaftElector  = "raft"  // the leader of the node's raft group (package consensus)
)

// Config chooses the elector and sets it up.
type Config struct {
	// Elector is the algorithm: BullyElector or RaftElector. Default
	// BullyElector.
	Elector string
	// Bully sets up the Bully elector; the Raft elector has no settings
	// (its timing is the raft group's, consensus.Config).
	Bully BullyConfig
}

// DefaultConfig returns the Bully elector with its default timeouts.
func DefaultConfig() Config {
	return Config{
		Elector: BullyElector,
		Bully: BullyConfig{
			OKTimeout:          400 * time.Millisecond, // a LAN round trip with retransmissions, and room
			CoordinatorTimeout: time.Second,            // the winner's OK timeout and its Coordinator, and room
			Settle:             500 * time.Millisecond, // a few gossip rounds: the views of nodes started together agree
		},
	}
}

// Validate reports an unknown elector or a Bully timeout out of range.
func (c Config) Validate() error {
	switch c.Elector {
	case "", BullyElector, RaftElector:
	default:
		return fmt.Errorf("%w: Elector %q: must be %s or %s", ErrInvalidConfig, c.Elector, BullyElector, RaftElector)
	}
	return c.Bully.Validate()
}

// New returns the factory of the elector cfg chooses, or cfg.Validate's
// error. Start it on every node under Name:
//
//	f, err := election.New(election.DefaultConfig())
//	...
//	node.Start(f)
//
// The Bully elector (Garcia-Molina, 1982) works on live membership: the
// node's membership must be attached (membership.Attach) before the elector
// starts. A node starts an election at boot, once its live view has been
// quiet for Settle (only the highest node of the view claims at once; the
// others wait CoordinatorTimeout for its claim), when the leader fails or
// leaves, when a Coordinator comes from a node ranked below it, and — if it
// leads — when a node ranked above it joins; a leader sends its Coordinator
// again to any lower node that joins, which may have missed it. An election
// sends Election to every live node ranked higher; a live higher node
// answers OK and runs its own election; a node that gets no OK within
// OKTimeout wins and sends Coordinator to every live node. A node that got
// an OK but no Coordinator within CoordinatorTimeout starts again. Every
// election raises the term; a Coordinator of an older term than the
// receiver's is refused (StaleTerm), which makes its sender run again with
// a later term. A node whose leader failed waits OKTimeout for the highest
// survivor's claim unless it is that survivor; a leader hands over to a
// higher node that joined after Settle; claims of lower nodes arriving
// within OKTimeout/4 make one election: a cold start of N nodes settles in
// O(N) messages (docs/election.md). Messages are sent reliably, as the algorithm assumes. A new
// BullyConfig delivered with actors.Node.Reconfigure changes the timeouts
// (and Priority) from the next election on.
//
// The Raft elector ([Raft]) follows the raft protocol of package consensus,
// which must run on the node too.
func New(cfg Config) (actors.Factory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Elector == RaftElector {
		return func() actors.Protocol { return &Raft{} }, nil
	}
	b := cfg.Bully.withDefaults()
	return func() actors.Protocol { return &bully{cfg: b} }, nil
}

package consensus_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
)

// New refuses what Validate refuses, before anything starts.
func TestNewValidates(t *testing.T) {
	cfg := consensus.DefaultConfig()
	cfg.DataDir, cfg.Peers = t.TempDir(), []actors.NodeName{"node-1", "node/2"}
	if f, err := consensus.New(cfg); f != nil || !errors.Is(err, consensus.ErrInvalidConfig) || !strings.Contains(err.Error(), "node/2") {
		t.Errorf("a bad peer name: %v, %v; want ErrInvalidConfig naming it", f != nil, err)
	}
	cfg.Peers = []actors.NodeName{"node-1"}
	cfg.HeartbeatTicks, cfg.ElectionTicks = 5, 5
	if _, err := consensus.New(cfg); !errors.Is(err, consensus.ErrInvalidConfig) || !strings.Contains(err.Error(), "ElectionTicks is 5") {
		t.Errorf("ElectionTicks not above HeartbeatTicks: %v", err)
	}
	cfg.ElectionTicks = 10
	if f, err := consensus.New(cfg); f == nil || err != nil {
		t.Errorf("a valid config: %v, %v", f != nil, err)
	}
}

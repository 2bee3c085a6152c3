package election_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/election"
)

// New refuses what Validate refuses, naming the field and what is valid.
func TestNewValidates(t *testing.T) {
	for _, c := range []struct {
		cfg  election.Config
		want string
	}{
		{election.Config{Elector: "paxos"}, `Elector "paxos": must be bully or raft`},
		{election.Config{Bully: election.BullyConfig{OKTimeout: time.Millisecond}}, "OKTimeout is 1ms; it must be 10ms..1m0s"},
		{election.Config{Bully: election.BullyConfig{CoordinatorTimeout: -time.Second}}, "CoordinatorTimeout is -1s"},
		{election.Config{Bully: election.BullyConfig{CoordinatorTimeout: time.Hour}}, "CoordinatorTimeout is 1h0m0s"},
	} {
		f, err := election.New(c.cfg)
		if f != nil || !errors.Is(err, election.ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, %v; want ErrInvalidConfig containing %q", c.cfg, f != nil, err, c.want)
		}
	}
	for _, cfg := range []election.Config{election.DefaultConfig(), {}, {Elector: election.RaftElector}} {
		if f, err := election.New(cfg); f == nil || err != nil {
			t.Errorf("New(%+v) = %v, %v; want a factory", cfg, f != nil, err)
		}
	}
}

package telemetry

import (
	"cmp"
	"fmt"
	"time"
)

// Config sets up the telemetry protocol on one node. Start from
// [DefaultConfig]; New fills any zero field from it.
type Config struct {
	// StatusInterval is how often the node sends its status to every live
	// member. Default 1s.
	StatusInterval time.Duration
	// StaleAfter marks a member's status stale when none newer arrived for
	// this long. Default 3 status intervals.
	StaleAfter time.Duration
	// AlertHistory is how many alerts a node keeps (one per fact: alerts of
	// the same key are one). Default 256.
	AlertHistory int
	// EndedJobs is how many ended jobs a contact reports in its status,
	// after every pending and running one. Default 10.
	EndedJobs int
	// RatePoints is how many status intervals of message rates a node
	// keeps per protocol for the dashboard's charts. Default 60.
	RatePoints int
	// HistoryStep is the resolution of the members' figures over time
	// (HistoryRequest): at most one point per member per step, from the
	// statuses received. Default 2s (at least StatusInterval).
	HistoryStep time.Duration
	// HistoryPoints is how many points a node keeps per member: the
	// history spans HistoryStep × HistoryPoints. Memory is bounded by
	// HistoryPoints × (9 + 5 × protocols, at most 32) × 8 bytes per
	// member: about 0.23 MB for 8 protocols at the defaults. Default 600
	// (20 minutes at the default step).
	HistoryPoints int
	// DiskFull raises a "disk almost full" alert when the used fraction of
	// the probe's disk reaches it (and again after it fell 2 points
	// below). Default 0.9.
	DiskFull float64
	// LeaderGrace is how long the elector may know no leader before a
	// leader_lost alert is raised (an election normally ends well
	// within it). Default 2s.
	LeaderGrace time.Duration
	// LogsTimeout bounds the wait for another node's logs. Default 3s.
	LogsTimeout time.Duration
	// MaxLogBytes caps the lines of one logs answer (older lines are left
	// out). Default 1 MiB, well under the network's envelope limit.
	MaxLogBytes int
	// Logs holds this node's recent log lines (give the node a logger that
	// writes into it). Nil: the node answers logs requests with ErrNoLogs.
	Logs *LogBuffer
	// Probe measures the host: CPU, memory, goroutines, disk. Default
	// SystemProbe("") (no disk figures).
	Probe Probe
}

// DefaultConfig returns the defaults of every field.
func DefaultConfig() Config {
	return Config{
		StatusInterval: time.Second,     // a dashboard a second behind at most
		StaleAfter:     3 * time.Second, // two lost statuses are not a failure
		AlertHistory:   256,             // a few days of a quiet cluster's alerts
		EndedJobs:      10,              // recent outcomes stay visible
		RatePoints:     60,              // a minute of rates at the default interval
		HistoryStep:    2 * time.Second, // fine enough for a 15-minute chart
		HistoryPoints:  600,             // 20 minutes at the default step
		DiskFull:       0.9,             // 90% used
		LeaderGrace:    2 * time.Second, // Bully's and raft's elections take well under a second
		LogsTimeout:    3 * time.Second, // a round trip, with room for a busy node
		MaxLogBytes:    1 << 20,         // fits one envelope (4 MiB) with room
		Probe:          SystemProbe(""), // process figures, no disk
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.StatusInterval = cmp.Or(c.StatusInterval, d.StatusInterval)
	c.StaleAfter = cmp.Or(c.StaleAfter, 3*c.StatusInterval)
	c.AlertHistory = cmp.Or(c.AlertHistory, d.AlertHistory)
	c.EndedJobs = cmp.Or(c.EndedJobs, d.EndedJobs)
	c.RatePoints = cmp.Or(c.RatePoints, d.RatePoints)
	c.HistoryStep = cmp.Or(c.HistoryStep, max(d.HistoryStep, c.StatusInterval))
	c.HistoryPoints = cmp.Or(c.HistoryPoints, d.HistoryPoints)
	c.DiskFull = cmp.Or(c.DiskFull, d.DiskFull)
	c.LeaderGrace = cmp.Or(c.LeaderGrace, d.LeaderGrace)
	c.LogsTimeout = cmp.Or(c.LogsTimeout, d.LogsTimeout)
	c.MaxLogBytes = cmp.Or(c.MaxLogBytes, d.MaxLogBytes)
	if c.Probe == nil {
		c.Probe = d.Probe
	}
	return c
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"StatusInterval", c.StatusInterval}, {"StaleAfter", c.StaleAfter}, {"LeaderGrace", c.LeaderGrace}, {"LogsTimeout", c.LogsTimeout}, {"HistoryStep", c.HistoryStep}} {
		if f.d <= 0 {
			return fmt.Errorf("%w: %s is %v; it must be positive", ErrInvalidConfig, f.name, f.d)
		}
	}
	if c.StatusInterval < 10*time.Millisecond {
		return fmt.Errorf("%w: StatusInterval is %v; use 10ms or more", ErrInvalidConfig, c.StatusInterval)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"AlertHistory", c.AlertHistory}, {"EndedJobs", c.EndedJobs}, {"RatePoints", c.RatePoints}, {"MaxLogBytes", c.MaxLogBytes}, {"HistoryPoints", c.HistoryPoints}} {
		if f.v < 1 {
			return fmt.Errorf("%w: %s is %d; it must be at least 1", ErrInvalidConfig, f.name, f.v)
		}
	}
	if c.HistoryPoints > 100_000 {
		return fmt.Errorf("%w: HistoryPoints is %d; at most 100000 (memory grows with it per member)", ErrInvalidConfig, c.HistoryPoints)
	}
	if c.DiskFull <= 0 || c.DiskFull > 1 {
		return fmt.Errorf("%w: DiskFull is %v; use a fraction in (0, 1]", ErrInvalidConfig, c.DiskFull)
	}
	if c.Probe == nil {
		return fmt.Errorf("%w: Probe is nil; use SystemProbe", ErrInvalidConfig)
	}
	return nil
}

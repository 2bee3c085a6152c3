package config

import (
	"fmt"
	"strings"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/mutex"
)

// JobsConfig is the jobs protocol's configuration: the Starlark runtime
// with the limits and the http_get allow list, and the exec runtime when
// jobs.exec is on (its scripts go to dataDir). An interpreter that cannot
// be found fails, naming jobs.exec_cmd.
func (c *Config) JobsConfig(dataDir string) (jobs.Config, error) {
	j := c.Jobs
	cfg, lim := c.jobsConfig(), c.jobsLimits()
	star, err := jobs.Starlark(jobs.StarlarkConfig{Limits: lim, HTTPAllow: j.HTTPAllow})
	if err != nil {
		return cfg, fmt.Errorf("jobs: %w", err)
	}
	cfg.Runtimes = []jobs.Runtime{star}
	if j.Exec {
		ex, err := jobs.Exec(jobs.ExecConfig{Limits: lim, Command: j.ExecCmd, Dir: dataDir})
		if err != nil {
			return cfg, &Error{Key: "jobs.exec_cmd", Msg: fmt.Sprintf("%s: %v", show(j.ExecCmd), err)}
		}
		cfg.Runtimes = append(cfg.Runtimes, ex)
		cfg.Disabled = []string{}
	}
	return cfg, nil
}

// jobsConfig is jobs.Config without its runtimes.
func (c *Config) jobsConfig() jobs.Config {
	j := c.Jobs
	cfg := jobs.DefaultConfig()
	if j.Slots != 0 {
		cfg.Slots = j.Slots // 0 in the file: one per CPU, the default
	}
	cfg.Prefetch, cfg.MaxParts, cfg.PartsPerMember = j.Prefetch, j.MaxParts, j.PartsPerMember
	cfg.MaxScriptBytes, cfg.MaxInputBytes, cfg.Backup, cfg.Retain = j.MaxScriptBytes, j.MaxInputBytes, j.Backup, j.Retain
	if cfg.Prefetch == 0 {
		cfg.Prefetch = -1 // 0 in the file means none; in jobs.Config, the default
	}
	return cfg
}

// jobsLimits is the limits of the jobs runtimes.
func (c *Config) jobsLimits() jobs.Limits {
	j := c.Jobs
	return jobs.Limits{MaxSteps: j.MaxSteps, Timeout: j.PartTimeout, MaxResultBytes: j.MaxResultBytes,
		MaxMemory: int64(j.MaxMemory) << 20, MaxDepth: j.MaxDepth}
}

// ElectionConfig is the elector's configuration.
func (c *Config) ElectionConfig() election.Config {
	return election.Config{Elector: c.Election.Elector,
		Bully: election.BullyConfig{OKTimeout: c.Election.OKTimeout, CoordinatorTimeout: c.Election.CoordinatorTimeout}}
}

// RaftOn tells whether the node runs the raft group.
func (c *Config) RaftOn() bool { return len(c.Raft.Peers) > 0 || c.Raft.Join }

// RaftConfig is the raft protocol's configuration, its log in dataDir,
// hosting the key-value store (kv) and the lease locks (mutex).
func (c *Config) RaftConfig(dataDir string) consensus.Config {
	cfg := consensus.DefaultConfig()
	cfg.Machines = []consensus.Machine{kv.DefaultMachine(), mutex.LockMachine()}
	cfg.DataDir, cfg.Peers, cfg.Join = dataDir, nodeNames(c.Raft.Peers), c.Raft.Join
	cfg.ForceNewState = c.Raft.ForceNewState
	cfg.TickInterval, cfg.ElectionTicks, cfg.HeartbeatTicks = c.Raft.TickInterval, c.Raft.ElectionTicks, c.Raft.HeartbeatTicks
	return cfg
}

// MembershipTiming is SWIM's timing overrides (zero keeps the preset's).
func (c *Config) MembershipTiming() membership.Timing {
	m := c.Membership
	return membership.Timing{
		ProbeInterval: m.ProbeInterval, ProbeTimeout: m.ProbeTimeout, IndirectChecks: m.IndirectChecks,
		SuspicionMult: m.SuspicionMult, SuspicionMaxTimeoutMult: m.SuspicionMaxTimeoutMult,
		AwarenessMaxMultiplier: m.AwarenessMaxMultiplier,
		GossipInterval:         m.GossipInterval, GossipNodes: m.GossipNodes, GossipToTheDeadTime: m.GossipToTheDeadTime,
		RetransmitMult: m.RetransmitMult, PushPullInterval: m.PushPullInterval, TCPTimeout: m.TCPTimeout,
		DeadNodeReclaimTime: m.DeadNodeReclaimTime,
		ReconnectInterval:   m.ReconnectInterval, ReconnectTimeout: m.ReconnectTimeout, JoinResync: m.JoinResync,
	}
}

// MembershipBroadcasts is the gossip channel's bounds
// (membership.Config.Broadcasts).
func (c *Config) MembershipBroadcasts() membership.Broadcasts {
	m := c.Membership
	return membership.Broadcasts{QueueLimit: m.BroadcastQueueLimit, DedupeWindow: m.BroadcastDedupeWindow, Origins: m.BroadcastOrigins}
}

// GossipKeys is the gossip keyring (membership.Config.Keys): the key of
// gossip_key or gossip_key_file (as it was when the configuration was
// loaded) first, then accept_gossip_keys; none without a key.
func (c *Config) GossipKeys() [][]byte {
	if c.gossipKey == nil {
		return nil
	}
	keys := [][]byte{c.gossipKey}
	for _, k := range c.Membership.AcceptGossipKeys {
		b, _ := decodeKey(k)
		keys = append(keys, b)
	}
	return keys
}

// APIToken is the HTTP API's bearer token, from token or token_file as it
// was when the configuration was loaded ("" for none).
func (c *Config) APIToken() string { return c.token }

// resolveSecrets reads the secrets of key files (validate checked them).
func (c *Config) resolveSecrets() {
	c.gossipKey = nil
	switch {
	case c.Membership.GossipKey != "":
		c.gossipKey, _ = decodeKey(c.Membership.GossipKey)
	case c.Membership.GossipKeyFile != "":
		if b, err := readFile(c.Membership.GossipKeyFile); err == nil {
			c.gossipKey, _ = decodeKey(string(b))
		}
	}
	c.token = c.API.Token
	if c.API.TokenFile != "" {
		c.token, _ = readToken(c.API.TokenFile)
	}
	c.token = strings.TrimSpace(c.token)
}

// nodeNames types the node names the file lists (raft.peers).
func nodeNames(names []string) []actors.NodeName {
	out := make([]actors.NodeName, len(names))
	for i, n := range names {
		out[i] = actors.NodeName(n)
	}
	return out
}

package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/transport"
)

// checker collects the problems of a configuration.
type checker struct {
	c    *Config
	errs invalid
}

// bad records a problem of key: its value (not shown for secrets), then
// what is valid.
func (ch *checker) bad(key string, value any, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	base, _, _ := strings.Cut(key, "[")
	if k, _ := Lookup(base); !k.Secret {
		msg = show(value) + ": " + msg
	}
	ch.errs = append(ch.errs, &Error{Key: key, Msg: msg})
}

func show(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case []string:
		return "[" + strings.Join(x, ", ") + "]"
	case time.Duration:
		return x.String()
	}
	return fmt.Sprint(v)
}

func (ch *checker) intRange(key string, v, lo, hi int, note string) {
	if v < lo || v > hi {
		ch.bad(key, v, "must be %d..%d%s", lo, hi, note)
	}
}

func (ch *checker) durRange(key string, v, lo, hi time.Duration, zeroOK bool) {
	if zeroOK && v == 0 {
		return
	}
	if v < lo || v > hi {
		note := ""
		if zeroOK {
			note = " (0: the default)"
		}
		ch.bad(key, v, "must be %v..%v%s", lo, hi, note)
	}
}

// hostPort checks a host:port address; port 0 only where anyPort.
func (ch *checker) hostPort(key, v string, anyPort bool) {
	host, p, err := net.SplitHostPort(v)
	port, perr := strconv.Atoi(p)
	lo := 1
	if anyPort {
		lo = 0
	}
	switch {
	case err != nil:
		ch.bad(key, v, "must be host:port, e.g. 10.0.0.5:7000 or node-1.troupe:7000")
	case perr != nil || port < lo || port > 65535:
		ch.bad(key, v, "the port must be %d..65535", lo)
	case host == "" && !anyPort:
		ch.bad(key, v, "needs a host, e.g. node-1:%d", port)
	}
}

func (ch *checker) file(key, path string) {
	if path == "" {
		return
	}
	if st, err := os.Stat(path); err != nil {
		ch.bad(key, path, "cannot be read: %v", err)
	} else if st.IsDir() {
		ch.bad(key, path, "is a directory; give a file")
	}
}

// validate checks every key against its valid range and the keys
// against each other.
func (c *Config) validate() invalid {
	ch := &checker{c: c}

	n := c.Node
	if err := transport.ValidateName("node", n.Name); err != nil {
		ch.bad("node.name", n.Name, "%v", err)
	}
	ch.hostPort("node.bind", n.Bind, true)
	if n.Advertise != "" && strings.ContainsAny(n.Advertise, ":/ ") {
		ch.bad("node.advertise", n.Advertise, "must be a host name or IP address without a port (the port is bind's)")
	}
	if _, err := zerolog.ParseLevel(n.LogLevel); err != nil || n.LogLevel == "" || n.LogLevel == "disabled" {
		ch.bad("node.log_level", n.LogLevel, "must be one of trace, debug, info, warn, error")
	}
	if n.LogFormat != "json" && n.LogFormat != "console" {
		ch.bad("node.log_format", n.LogFormat, "must be json or console")
	}

	m := c.Membership
	if m.Gossip != "" {
		ch.hostPort("membership.gossip", m.Gossip, false)
	} else if _, p, err := net.SplitHostPort(n.Bind); err == nil && p == "0" {
		ch.bad("membership.gossip", m.Gossip, "must be set when node.bind has port 0 (it defaults to bind's port + 1)")
	}
	for i, j := range m.Join {
		ch.hostPort(fmt.Sprintf("membership.join[%d]", i), j, false)
	}
	if !slices.Contains(membership.Presets, m.Preset) {
		ch.bad("membership.preset", m.Preset, "must be one of %s", strings.Join(membership.Presets, ", "))
	}
	if m.GossipKey != "" && m.GossipKeyFile != "" {
		ch.bad("membership.gossip_key", "", "set gossip_key or gossip_key_file, not both")
	}
	if m.GossipKey != "" {
		if _, err := decodeKey(m.GossipKey); err != nil {
			ch.bad("membership.gossip_key", "", "%v", err)
		}
	}
	if m.GossipKeyFile != "" {
		if b, err := os.ReadFile(m.GossipKeyFile); err != nil {
			ch.bad("membership.gossip_key_file", m.GossipKeyFile, "cannot be read: %v", err)
		} else if _, err := decodeKey(string(b)); err != nil {
			ch.bad("membership.gossip_key_file", m.GossipKeyFile, "%v", err)
		}
	}
	for i, k := range m.AcceptGossipKeys {
		if _, err := decodeKey(k); err != nil {
			ch.bad(fmt.Sprintf("membership.accept_gossip_keys[%d]", i), "", "%v", err)
		}
	}
	if len(m.AcceptGossipKeys) > 0 && m.GossipKey == "" && m.GossipKeyFile == "" {
		ch.bad("membership.accept_gossip_keys", "", "needs gossip_key (or gossip_key_file): the key this node sends with")
	}
	ch.durRange("membership.probe_interval", m.ProbeInterval, 10*time.Millisecond, time.Minute, true)
	ch.durRange("membership.probe_timeout", m.ProbeTimeout, 5*time.Millisecond, time.Minute, true)
	ch.intRange("membership.suspicion_mult", m.SuspicionMult, 0, 100, " (0: the preset's)")
	ch.durRange("membership.gossip_interval", m.GossipInterval, 5*time.Millisecond, time.Minute, true)
	ch.durRange("membership.push_pull_interval", m.PushPullInterval, 100*time.Millisecond, time.Hour, true)
	if m.ProbeInterval > 0 && m.ProbeTimeout > m.ProbeInterval {
		ch.bad("membership.probe_timeout", m.ProbeTimeout, "must not exceed probe_interval (%v)", m.ProbeInterval)
	}

	e := c.Election
	raftOn := len(c.Raft.Peers) > 0 || c.Raft.Join
	switch e.Elector {
	case "bully":
	case "raft":
		if !raftOn {
			ch.bad("election.elector", e.Elector, "needs the raft group: set raft.peers (or raft.join)")
		}
	default:
		ch.bad("election.elector", e.Elector, "must be bully or raft")
	}
	ch.durRange("election.ok_timeout", e.OKTimeout, 10*time.Millisecond, time.Minute, false)
	ch.durRange("election.coordinator_timeout", e.CoordinatorTimeout, 10*time.Millisecond, time.Minute, false)

	j := c.Jobs
	ch.intRange("jobs.slots", j.Slots, 0, 1024, " (0: one per CPU)")
	ch.intRange("jobs.prefetch", j.Prefetch, -1, 1024, " (-1: none)")
	if j.MaxSteps < 1000 || j.MaxSteps > 1<<50 {
		ch.bad("jobs.max_steps", j.MaxSteps, "must be 1000..%d", uint64(1)<<50)
	}
	ch.durRange("jobs.part_timeout", j.PartTimeout, 10*time.Millisecond, 24*time.Hour, false)
	ch.intRange("jobs.max_result_bytes", j.MaxResultBytes, 1, 3<<20, " (envelopes carry 4 MiB)")
	for i, h := range j.HTTPAllow {
		if h == "" || strings.ContainsAny(h, "/ ") {
			ch.bad(fmt.Sprintf("jobs.http_allow[%d]", i), h, "must be a host or host:port, without a scheme or path")
		}
	}
	if j.Exec && len(j.ExecCmd) == 0 {
		ch.bad("jobs.exec_cmd", j.ExecCmd, "must name the interpreter when jobs.exec is on, e.g. [python3]")
	}
	ch.intRange("jobs.max_parts", j.MaxParts, 1, 1_000_000, "")
	ch.intRange("jobs.parts_per_member", j.PartsPerMember, 1, 1000, "")
	ch.intRange("jobs.max_script_bytes", j.MaxScriptBytes, 1, 3<<20, "")
	ch.intRange("jobs.max_input_bytes", j.MaxInputBytes, 1, 3<<20, "")
	if j.Backup != -1 && (j.Backup < 1 || j.Backup > 1000) {
		ch.bad("jobs.backup", j.Backup, "must be -1 (off) or 1..1000")
	}
	ch.intRange("jobs.retain", j.Retain, 1, 1_000_000, "")

	r := c.Raft
	for i, p := range r.Peers {
		if err := transport.ValidateName("peer", p); err != nil {
			ch.bad(fmt.Sprintf("raft.peers[%d]", i), p, "%v", err)
		}
	}
	if len(r.Peers) > 0 && !r.Join && !slices.Contains(r.Peers, n.Name) {
		ch.bad("raft.peers", r.Peers, "does not name this node (%s): list the group's first voters including this one, or set raft.join", n.Name)
	}
	if r.ForceNewState && !r.Join {
		ch.bad("raft.force_new_state", r.ForceNewState, "needs raft.join (--force-new-state needs --raft-join): "+
			"a node started over is a new, empty member that must not bootstrap the group; it is added back once it runs")
	}
	ch.durRange("raft.tick_interval", r.TickInterval, time.Millisecond, 10*time.Second, false)
	ch.intRange("raft.heartbeat_ticks", r.HeartbeatTicks, 1, 1000, "")
	ch.intRange("raft.election_ticks", r.ElectionTicks, 2, 10000, "")
	if r.ElectionTicks <= r.HeartbeatTicks {
		ch.bad("raft.election_ticks", r.ElectionTicks, "must be above raft.heartbeat_ticks (%d)", r.HeartbeatTicks)
	}

	a := c.API
	ch.hostPort("api.listen", a.Listen, true)
	if a.Token != "" && a.TokenFile != "" {
		ch.bad("api.token", "", "set token or token_file, not both")
	}
	if a.Token != "" && len(a.Token) < 16 {
		ch.bad("api.token", "", "is %d characters; use at least 16 (e.g. openssl rand -hex 32)", len(a.Token))
	}
	if a.TokenFile != "" {
		if t, err := readToken(a.TokenFile); err != nil {
			ch.bad("api.token_file", a.TokenFile, "%v", err)
		} else if len(t) < 16 {
			ch.bad("api.token_file", a.TokenFile, "holds %d characters; use at least 16", len(t))
		}
	}
	for i, p := range a.OpenPaths {
		if !strings.HasPrefix(p, "/") {
			ch.bad(fmt.Sprintf("api.open_paths[%d]", i), p, "must be a path starting with /, e.g. /metrics")
		}
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		ch.bad("api.tls_cert", a.TLSCert, "api.tls_cert and api.tls_key go together: set both for HTTPS, or neither")
	}
	ch.file("api.tls_cert", a.TLSCert)
	ch.file("api.tls_key", a.TLSKey)

	t := c.TLS
	if set := btoi(t.CA != "") + btoi(t.Cert != "") + btoi(t.Key != ""); set != 0 && set != 3 {
		ch.bad("tls.ca", t.CA, "tls.ca, tls.cert and tls.key go together: set all three for mutual TLS between nodes, or none")
	}
	ch.file("tls.ca", t.CA)
	ch.file("tls.cert", t.Cert)
	ch.file("tls.key", t.Key)
	return ch.errs
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// decodeKey decodes a gossip key: base64 of 16, 24 or 32 bytes.
func decodeKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("is not base64 (make one with: head -c 32 /dev/urandom | base64)")
	}
	if n := len(b); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("decodes to %d bytes; a gossip key is 16, 24 or 32 bytes (AES-128, -192, -256)", n)
	}
	return b, nil
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot be read: %v", err)
	}
	return strings.TrimSpace(string(b)), nil
}

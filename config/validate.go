package config

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/jobs"
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

// The YAML keys of the fields of the protocols' Configs, by Go name.
var (
	electionKeys = map[string]string{"Elector": "election.elector", "OKTimeout": "election.ok_timeout",
		"CoordinatorTimeout": "election.coordinator_timeout"}
	jobsKeys = map[string]string{"Slots": "jobs.slots", "Prefetch": "jobs.prefetch", "MaxParts": "jobs.max_parts",
		"PartsPerMember": "jobs.parts_per_member", "MaxScriptBytes": "jobs.max_script_bytes",
		"MaxInputBytes": "jobs.max_input_bytes", "Backup": "jobs.backup", "Retain": "jobs.retain",
		"Limits.MaxSteps": "jobs.max_steps", "Limits.Timeout": "jobs.part_timeout",
		"Limits.MaxResultBytes": "jobs.max_result_bytes", "Limits.MaxMemory": "jobs.max_memory",
		"Limits.MaxDepth": "jobs.max_depth"}
	raftKeys = map[string]string{"Peers": "raft.peers", "Join": "raft.join", "ForceNewState": "raft.force_new_state",
		"TickInterval": "raft.tick_interval", "HeartbeatTicks": "raft.heartbeat_ticks",
		"ElectionTicks": "raft.election_ticks", "DataDir": "node.data_dir"}
)

// keyNotes add what a value means in the file where it differs from the
// Go field's.
var keyNotes = map[string]string{"jobs.slots": "0: one per CPU", "jobs.prefetch": "0: none"}

// validated records the problems err of a protocol package's
// Config.Validate holds (one, or several joined): each under the YAML key
// of the Go field its message starts with (after sentinel), or under
// section when it names no field with a key. The message's other field
// names become their keys ("set Join" reads "set raft.join").
func (ch *checker) validated(section string, sentinel, err error, keys map[string]string) {
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		msg := strings.TrimPrefix(e.Error(), sentinel.Error()+": ")
		field := msg
		if i := strings.IndexFunc(msg, func(r rune) bool { return !unicode.IsLetter(r) && r != '.' }); i >= 0 {
			field = msg[:i]
		}
		key, ok := keys[field]
		if ok {
			msg = strings.TrimLeft(msg[len(field):], " :")
		} else {
			key = section
		}
		msg = fieldNames.ReplaceAllStringFunc(msg, func(w string) string { return cmp.Or(keys[w], w) })
		if note := keyNotes[key]; note != "" {
			msg += " (" + note + ")"
		}
		ch.errs = append(ch.errs, &Error{Key: key, Msg: msg})
	}
}

// fieldNames matches what may be a Go field name in a message.
var fieldNames = regexp.MustCompile(`\b(Limits\.)?[A-Z][A-Za-z]+\b`)

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
	if n.LogFormat != "auto" && n.LogFormat != "json" && n.LogFormat != "console" {
		ch.bad("node.log_format", n.LogFormat, "must be auto, json or console")
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
	preset := " (0: the preset's)"
	ch.durRange("membership.probe_interval", m.ProbeInterval, 10*time.Millisecond, time.Minute, true)
	ch.durRange("membership.probe_timeout", m.ProbeTimeout, 5*time.Millisecond, time.Minute, true)
	ch.intRange("membership.indirect_checks", m.IndirectChecks, 0, 16, preset)
	ch.intRange("membership.suspicion_mult", m.SuspicionMult, 0, 100, preset)
	ch.intRange("membership.suspicion_max_timeout_mult", m.SuspicionMaxTimeoutMult, 0, 100, preset)
	ch.intRange("membership.awareness_max_multiplier", m.AwarenessMaxMultiplier, 0, 64, preset)
	ch.durRange("membership.gossip_interval", m.GossipInterval, 5*time.Millisecond, time.Minute, true)
	ch.intRange("membership.gossip_nodes", m.GossipNodes, 0, 64, preset)
	ch.durRange("membership.gossip_to_the_dead_time", m.GossipToTheDeadTime, 100*time.Millisecond, time.Hour, true)
	ch.intRange("membership.retransmit_mult", m.RetransmitMult, 0, 100, preset)
	ch.durRange("membership.push_pull_interval", m.PushPullInterval, 100*time.Millisecond, time.Hour, true)
	ch.durRange("membership.tcp_timeout", m.TCPTimeout, 100*time.Millisecond, 5*time.Minute, true)
	ch.durRange("membership.dead_node_reclaim_time", m.DeadNodeReclaimTime, time.Millisecond, 24*time.Hour, true)
	ch.durRange("membership.reconnect_interval", m.ReconnectInterval, 100*time.Millisecond, time.Hour, true)
	ch.durRange("membership.reconnect_timeout", m.ReconnectTimeout, time.Second, 30*24*time.Hour, true)
	ch.durRange("membership.join_resync", m.JoinResync, 10*time.Millisecond, 10*time.Minute, true)
	for _, k := range []struct {
		key   string
		v, lo int
		dflt  int
	}{
		{"membership.broadcast_queue_limit", m.BroadcastQueueLimit, 1, 1024},
		{"membership.broadcast_dedupe_window", m.BroadcastDedupeWindow, 64, 1024},
		{"membership.broadcast_origins", m.BroadcastOrigins, 16, 1024},
	} {
		if k.v != 0 {
			ch.intRange(k.key, k.v, k.lo, 65536, fmt.Sprintf(" (0: the default %d)", k.dflt))
		}
	}
	if o, w := cmp.Or(m.BroadcastOrigins, 1024), cmp.Or(m.BroadcastDedupeWindow, 1024); o > 0 && w > 0 && o <= 65536 && w <= 65536 && o*w > 1<<28 {
		ch.bad("membership.broadcast_origins", m.BroadcastOrigins, "× broadcast_dedupe_window (%d) must be at most %d (64 MiB of de-duplication windows)", w, 1<<28)
	}
	if m.ProbeInterval > 0 && m.ProbeTimeout > m.ProbeInterval {
		ch.bad("membership.probe_timeout", m.ProbeTimeout, "must not exceed probe_interval (%v)", m.ProbeInterval)
	}

	// The protocols' own rules: each package's Config.Validate, its
	// errors named by the YAML key of the field they start with.
	if c.Election.Elector == election.RaftElector && !c.RaftOn() {
		ch.bad("election.elector", c.Election.Elector, "needs the raft group: set raft.peers (or raft.join)")
	}
	ch.validated("election", election.ErrInvalidConfig, c.ElectionConfig().Validate(), electionKeys)

	j := c.Jobs
	ch.validated("jobs", jobs.ErrInvalidConfig, c.jobsConfig().Validate(), jobsKeys)
	ch.validated("jobs", jobs.ErrInvalidConfig, c.jobsLimits().Validate(), jobsKeys)
	// Tighter than jobs.Limits (whose tests run with one step or 1ns):
	// bounds an operator cannot mean to leave.
	if j.MaxSteps < 1000 || j.MaxSteps > 1<<50 {
		ch.bad("jobs.max_steps", j.MaxSteps, "must be 1000..%d", uint64(1)<<50)
	}
	ch.durRange("jobs.part_timeout", j.PartTimeout, 10*time.Millisecond, 24*time.Hour, false)
	for i, h := range j.HTTPAllow {
		if h == "" || strings.ContainsAny(h, "/ ") {
			ch.bad(fmt.Sprintf("jobs.http_allow[%d]", i), h, "must be a host or host:port, without a scheme or path")
		}
	}
	if j.Exec && len(j.ExecCmd) == 0 {
		ch.bad("jobs.exec_cmd", j.ExecCmd, "must name the interpreter when jobs.exec is on, e.g. [python3]")
	}

	r := c.Raft
	if len(r.Peers) > 0 && !r.Join && !slices.Contains(r.Peers, n.Name) {
		ch.bad("raft.peers", r.Peers, "does not name this node (%s): list the group's first voters including this one, or set raft.join", n.Name)
	}
	rc := c.RaftConfig(cmp.Or(n.DataDir, "data_dir")) // "": a temporary directory
	if !c.RaftOn() {
		// The raft keys are checked while the group is off too: turning
		// it on later must not meet them for the first time.
		rc.Peers = []actors.NodeName{"any-peer"}
	}
	ch.validated("raft", consensus.ErrInvalidConfig, rc.Validate(), raftKeys)

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

package config

import (
	"time"

	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/membership"
)

// Config is a node's whole configuration: one section per protocol or
// concern, one field per key. The YAML names are the keys of the file
// (`jobs.slots`); every key can also be set by an environment variable
// (TROUPE_JOBS_SLOTS) and most by a flag of `node run` (see [Keys]).
type Config struct {
	Node       Node       `yaml:"node"`
	Membership Membership `yaml:"membership"`
	Election   Election   `yaml:"election"`
	Jobs       Jobs       `yaml:"jobs"`
	Raft       Raft       `yaml:"raft"`
	Telemetry  Telemetry  `yaml:"telemetry"`
	API        API        `yaml:"api"`
	TLS        TLS        `yaml:"tls"`

	// Secrets read from files when the configuration was loaded.
	gossipKey []byte
	token     string
}

// Node is the node itself.
type Node struct {
	Name      string `yaml:"name"`       // unique in the cluster; default the host name
	Bind      string `yaml:"bind"`       // host:port for other nodes' messages (gRPC)
	Advertise string `yaml:"advertise"`  // host other nodes reach this one at, when it differs from bind's
	DataDir   string `yaml:"data_dir"`   // the node's files (raft log, exec scripts); "" a temporary directory
	LogLevel  string `yaml:"log_level"`  // trace, debug, info, warn, error
	LogFormat string `yaml:"log_format"` // auto (console on a terminal, json otherwise), json (one object a line) or console (for people)
}

// Membership is SWIM (package membership).
type Membership struct {
	Gossip           string   `yaml:"gossip"`             // host:port for SWIM; "" bind's host, its port + 1
	Join             []string `yaml:"join"`               // gossip addresses of members to join through
	Preset           string   `yaml:"preset"`             // lan, wan or local
	GossipKey        string   `yaml:"gossip_key"`         // base64 of 16, 24 or 32 bytes: AES-encrypted gossip
	GossipKeyFile    string   `yaml:"gossip_key_file"`    // a file holding gossip_key
	AcceptGossipKeys []string `yaml:"accept_gossip_keys"` // more keys accepted, not used to send (key rotation)
	// SWIM's timings (membership.Timing): 0 keeps the preset's.
	ProbeInterval           time.Duration `yaml:"probe_interval"`             // how often a node probes one other
	ProbeTimeout            time.Duration `yaml:"probe_timeout"`              // wait for a direct ack before indirect probes
	IndirectChecks          int           `yaml:"indirect_checks"`            // members asked to probe indirectly
	SuspicionMult           int           `yaml:"suspicion_mult"`             // suspicion lasts this many probe intervals × log10(N) at least
	SuspicionMaxTimeoutMult int           `yaml:"suspicion_max_timeout_mult"` // ... and at most this many times that, without confirmations
	AwarenessMaxMultiplier  int           `yaml:"awareness_max_multiplier"`   // Lifeguard: how far a struggling node slows its probes
	GossipInterval          time.Duration `yaml:"gossip_interval"`            // how often a node gossips
	GossipNodes             int           `yaml:"gossip_nodes"`               // members gossiped to per round
	GossipToTheDeadTime     time.Duration `yaml:"gossip_to_the_dead_time"`    // keep gossiping to a failed member this long
	RetransmitMult          int           `yaml:"retransmit_mult"`            // a message is gossiped this many times × log10(N+1)
	PushPullInterval        time.Duration `yaml:"push_pull_interval"`         // full state sync with one random member
	TCPTimeout              time.Duration `yaml:"tcp_timeout"`                // stream dial and state sync timeout
	DeadNodeReclaimTime     time.Duration `yaml:"dead_node_reclaim_time"`     // a failed member's name may come back at another address after this
	ReconnectInterval       time.Duration `yaml:"reconnect_interval"`         // try to rejoin through one failed member this often
	ReconnectTimeout        time.Duration `yaml:"reconnect_timeout"`          // ... for this long after it failed
	JoinResync              time.Duration `yaml:"join_resync"`                // sync state once more this long after joining
	// The gossip channel's bounds (membership.Broadcasts): 0 keeps the default.
	BroadcastQueueLimit   int `yaml:"broadcast_queue_limit"`   // broadcast frames queued for gossip, own and relayed
	BroadcastDedupeWindow int `yaml:"broadcast_dedupe_window"` // sequence numbers remembered per origin to drop copies
	BroadcastOrigins      int `yaml:"broadcast_origins"`       // origins remembered for de-duplication
}

// Election is the leader election (package election).
type Election struct {
	Elector            string        `yaml:"elector"`             // bully, or raft (the raft group's leader)
	OKTimeout          time.Duration `yaml:"ok_timeout"`          // Bully: wait for an OK before winning
	CoordinatorTimeout time.Duration `yaml:"coordinator_timeout"` // Bully: wait for the Coordinator after an OK
}

// Jobs is the jobs protocol (package jobs).
type Jobs struct {
	Slots          int           `yaml:"slots"`            // parts run at once; 0 one per CPU
	Prefetch       int           `yaml:"prefetch"`         // parts held beyond the running ones; -1 none
	MaxSteps       uint64        `yaml:"max_steps"`        // Starlark steps per call
	PartTimeout    time.Duration `yaml:"part_timeout"`     // wall-clock limit per call
	MaxResultBytes int           `yaml:"max_result_bytes"` // a result's JSON
	MaxMemory      int           `yaml:"max_memory"`       // MiB a script's process may add to its address space
	MaxDepth       int           `yaml:"max_depth"`        // nesting of JSON texts and values in scripts
	HTTPAllow      []string      `yaml:"http_allow"`       // hosts job scripts may http_get from; none: no http_get
	Exec           bool          `yaml:"exec"`             // the exec runtime (runs exec_cmd with the node's rights)
	ExecCmd        []string      `yaml:"exec_cmd"`         // the exec runtime's interpreter and arguments
	MaxParts       int           `yaml:"max_parts"`        // parts of one job
	PartsPerMember int           `yaml:"parts_per_member"` // parts per live member when the leader picks
	MaxScriptBytes int           `yaml:"max_script_bytes"` // a submitted script
	MaxInputBytes  int           `yaml:"max_input_bytes"`  // a submitted input
	Backup         float64       `yaml:"backup"`           // backup copies of parts this many times slower than the mean; -1 off
	Retain         int           `yaml:"retain"`           // ended jobs kept for status
}

// Raft is the raft group and its key-value store (package consensus).
type Raft struct {
	Peers          []string      `yaml:"peers"`           // the group's first voters, this node among them; none: no raft group
	Join           bool          `yaml:"join"`            // start empty and wait to be added (node raft add-voter)
	ForceNewState  bool          `yaml:"force_new_state"` // start over when the raft state is incomplete or damaged (needs join)
	TickInterval   time.Duration `yaml:"tick_interval"`   // one raft tick
	ElectionTicks  int           `yaml:"election_ticks"`  // ticks without a leader before a vote
	HeartbeatTicks int           `yaml:"heartbeat_ticks"` // ticks between heartbeats
}

// Telemetry is the node's telemetry (package telemetry).
type Telemetry struct {
	ProtoactorMetrics bool `yaml:"protoactor_metrics"` // protoactor-go's own metrics on /metrics (a few µs a message)
}

// API is the node's HTTP API.
type API struct {
	Listen    string   `yaml:"listen"`     // host:port of the HTTP API
	Token     string   `yaml:"token"`      // bearer token every request needs; "" none
	TokenFile string   `yaml:"token_file"` // a file holding the token
	OpenPaths []string `yaml:"open_paths"` // paths served without the token (e.g. /metrics)
	TLSCert   string   `yaml:"tls_cert"`   // HTTPS: the certificate (PEM)
	TLSKey    string   `yaml:"tls_key"`    // HTTPS: its key (PEM)
	Insecure  bool     `yaml:"insecure"`   // serve beyond loopback without a token (--insecure-api)
}

// TLS is mutual TLS between nodes (package security).
type TLS struct {
	CA   string `yaml:"ca"`   // the cluster's CA certificate (PEM)
	Cert string `yaml:"cert"` // this node's certificate, signed by the CA
	Key  string `yaml:"key"`  // its private key
}

// Default returns the defaults of every key. node.name is left empty:
// Load fills it with the host name.
func Default() Config {
	lim := jobs.DefaultLimits()
	jd := jobs.DefaultConfig()
	rd := consensus.DefaultConfig()
	return Config{
		Node:       Node{Bind: "127.0.0.1:7000", LogLevel: "info", LogFormat: "auto"},
		Membership: Membership{Preset: membership.PresetLAN},
		Election:   Election{Elector: "bully", OKTimeout: 400 * time.Millisecond, CoordinatorTimeout: time.Second},
		Jobs: Jobs{
			Prefetch: jd.Prefetch, MaxSteps: lim.MaxSteps, PartTimeout: lim.Timeout, MaxResultBytes: lim.MaxResultBytes,
			MaxMemory: int(lim.MaxMemory >> 20), MaxDepth: lim.MaxDepth,
			ExecCmd: []string{"python3"}, MaxParts: jd.MaxParts, PartsPerMember: jd.PartsPerMember,
			MaxScriptBytes: jd.MaxScriptBytes, MaxInputBytes: jd.MaxInputBytes, Backup: jd.Backup, Retain: jd.Retain,
		},
		Raft: Raft{TickInterval: rd.TickInterval, ElectionTicks: rd.ElectionTicks, HeartbeatTicks: rd.HeartbeatTicks},
		API:  API{Listen: "127.0.0.1:8080"},
	}
}

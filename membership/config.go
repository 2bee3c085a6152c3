package membership

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/security"
	"github.com/troupe-dev/troupe/transport"
)

// Presets name the timing profiles a Config can start from.
const (
	// PresetLAN is memberlist's DefaultLANConfig: probes every second,
	// 500ms probe timeout, suspicion 4·log10(N) probe intervals.
	PresetLAN = "lan"
	// PresetWAN is memberlist's DefaultWANConfig: probes every 5s, for
	// links with high and variable latency.
	PresetWAN = "wan"
	// PresetLocal is for nodes on one host or one container network,
	// scaled to the nodes that share this machine's CPUs
	// (Config.Colocated): see LocalTiming. Up to 8 nodes per CPU it is
	// memberlist's DefaultLocalConfig probing five times as fast (200ms
	// interval, 100ms timeout); beyond, its probes, timeouts and
	// suspicions stretch so that 100 or 200 nodes in one process stay
	// free of false failures on 2 cores (docs/membership.md has the
	// formula and the numbers).
	PresetLocal = "local"
)

// Presets lists the valid preset names.
var Presets = []string{PresetLAN, PresetWAN, PresetLocal}

// Timing overrides the timings of a preset. A zero field keeps the preset's
// value. See memberlist.Config for the meaning of each.
type Timing struct {
	ProbeInterval           time.Duration // how often a node probes one other
	ProbeTimeout            time.Duration // wait for a direct ack before indirect probes
	IndirectChecks          int           // nodes asked to probe indirectly
	SuspicionMult           int           // suspicion lasts SuspicionMult·log10(N) probe intervals at least
	SuspicionMaxTimeoutMult int           // ... and at most this many times that
	AwarenessMaxMultiplier  int           // Lifeguard: how far a struggling node may slow its probing
	GossipInterval          time.Duration // how often to gossip
	GossipNodes             int           // peers per gossip round
	GossipToTheDeadTime     time.Duration // keep gossiping to a dead node this long
	RetransmitMult          int           // a broadcast is retransmitted RetransmitMult·log10(N+1) times
	PushPullInterval        time.Duration // full state sync with one random node
	TCPTimeout              time.Duration // stream dial and push-pull timeout
	DeadNodeReclaimTime     time.Duration // after this, a dead node's name may come back at another address

	// ReconnectInterval: how often a node tries to rejoin through one
	// failed member, so that the two sides of a healed partition merge
	// (memberlist never probes members it holds dead). Default twice the
	// push-pull interval: each attempt is a full state exchange, and a
	// burst of false failures must not turn into a burst of them.
	ReconnectInterval time.Duration
	// ReconnectTimeout: stop trying a failed member after this. Default 1h.
	ReconnectTimeout time.Duration
	// JoinResync: a node that joined syncs its state with the seeds once
	// more after a random delay between JoinResync and twice that, so that
	// it learns the nodes that joined at the same time as it without
	// waiting for gossip or the next push-pull. Default 2 probe intervals.
	JoinResync time.Duration
}

// Broadcasts bounds the memory of the gossip channel (Packets.Broadcast):
// every preset has the same defaults. A zero field keeps the default.
type Broadcasts struct {
	// QueueLimit is the broadcast frames (own and relayed) queued for
	// gossip; beyond it the ones transmitted most are pruned, and the
	// handler's Dropped is told. Default 1024; valid 1..65536.
	QueueLimit int
	// DedupeWindow is the sequence numbers remembered per origin and boot
	// nonce to drop copies of a broadcast already delivered (rounded up to
	// a multiple of 64); a copy older than the window is dropped too.
	// Default 1024; valid 64..65536.
	DedupeWindow int
	// Origins is the origins remembered for de-duplication, the least
	// recently heard from evicted beyond it: a broadcast of an evicted
	// origin still in flight may be delivered again. Default 1024; valid
	// 16..65536.
	//
	// De-duplication holds at most Origins·DedupeWindow/4 bytes (two
	// windows of bits per origin: 256 KiB by default), which must not
	// exceed 64 MiB; the queue about 1 KiB per frame (1 MiB by default).
	Origins int
}

// maxDedupeBits bounds Origins·DedupeWindow: 64 MiB of windows.
const maxDedupeBits = 1 << 28

// Defaults and bounds of Broadcasts.
const (
	defaultQueueLimit   = 1024
	defaultDedupeWindow = 1024
	defaultOrigins      = 1024
	maxBroadcastKnob    = 65536
)

func (b Broadcasts) withDefaults() Broadcasts {
	b.QueueLimit = cmp.Or(b.QueueLimit, defaultQueueLimit)
	b.DedupeWindow = cmp.Or(b.DedupeWindow, defaultDedupeWindow)
	b.Origins = cmp.Or(b.Origins, defaultOrigins)
	return b
}

func (b Broadcasts) validate() error {
	var errs []error
	for _, k := range []struct {
		name     string
		v        int
		min, def int
	}{
		{"QueueLimit", b.QueueLimit, 1, defaultQueueLimit},
		{"DedupeWindow", b.DedupeWindow, 64, defaultDedupeWindow},
		{"Origins", b.Origins, 16, defaultOrigins},
	} {
		if k.v != 0 && (k.v < k.min || k.v > maxBroadcastKnob) {
			errs = append(errs, fmt.Errorf("membership: Broadcasts.%s is %d; valid: %d..%d, or 0 for the default %d", k.name, k.v, k.min, maxBroadcastKnob, k.def))
		}
	}
	if d := b.withDefaults(); len(errs) == 0 && d.Origins*d.DedupeWindow > maxDedupeBits {
		errs = append(errs, fmt.Errorf("membership: Broadcasts.Origins (%d) × Broadcasts.DedupeWindow (%d) is %d; at most %d (64 MiB of de-duplication windows)",
			d.Origins, d.DedupeWindow, d.Origins*d.DedupeWindow, maxDedupeBits))
	}
	return errors.Join(errs...)
}

// JoinRetry says how Join retries seeds that do not answer.
type JoinRetry struct {
	Backoff    time.Duration // first wait between attempts; default 100ms
	MaxBackoff time.Duration // the wait doubles up to this; default 2s
	Timeout    time.Duration // give up after this long; default 30s
}

// Config sets up one node's membership.
type Config struct {
	// Name is the node's name, unique among live members.
	Name actors.NodeName
	// Address is the node's protoactor remote address, gossiped so that
	// other nodes can reach it (empty on the sim network).
	Address string
	// Kinds are the protoactor cluster kinds this node hosts.
	Kinds []string

	// Preset is the timing profile: "lan" (default), "wan" or "local".
	Preset string
	// Timing overrides single timings of the preset.
	Timing Timing
	// Colocated is how many nodes share this machine's CPUs (an
	// in-process cluster: all of its nodes); the "local" preset scales
	// with it (LocalTiming). 0: the memberships running in this process
	// when New is called, this one included. Every node of a cluster
	// should be given the same value: timings that differ between nodes
	// let the fastest one's suspicions decide.
	Colocated int

	// Bind is the host:port SWIM listens on (UDP and TCP). Default
	// 127.0.0.1:0, a free port on loopback. Ignored when Transport is set.
	Bind string
	// Advertise is the host:port other nodes reach this one at, when it
	// differs from Bind (NAT, containers). Ignored when Transport is set.
	Advertise string
	// Seeds are the addresses (host:port) of members to join through. Join
	// tries them all and retries with backoff until one answers.
	Seeds []string
	// Retry paces the retries of Join.
	Retry JoinRetry

	// Memory is the members file (e.g. <data dir>/members.json): the
	// membership keeps in it the members it knows (name, gossip and
	// remote addresses; written atomically, at most once a second, when
	// the view changes), and on start reads it back, so that Join also
	// tries the remembered members and FeedPeers gives their remote
	// addresses before gossip brings them. A file that is unusable
	// (LoadMemory) is logged and ignored. Empty: no file.
	Memory string

	// Keys is the gossip keyring: every key is accepted on receive, the
	// first encrypts what this node sends. Each key is 16, 24 or 32 bytes
	// (AES-128, -192, -256). No keys: gossip is not encrypted.
	Keys [][]byte

	// TLS, when set, runs SWIM's streams (joins, push-pull state syncs)
	// over mutual TLS against the cluster's CA: a node without a
	// certificate the CA signed cannot join (ErrCertificate). SWIM's UDP
	// packets are not TLS; Keys encrypts them.
	TLS *security.MutualTLS

	// Broadcasts bounds the gossip channel's queue and de-duplication.
	Broadcasts Broadcasts

	// Transport replaces memberlist's UDP/TCP transport, e.g. with the sim
	// hub's (sim.Hub.Memberlist), so that simulated faults apply to SWIM.
	Transport memberlist.NodeAwareTransport

	// Generation tells this run of the node from earlier ones; 0 means the
	// start time in nanoseconds.
	Generation uint64

	// Logger receives memberlist's log lines and membership changes.
	Logger zerolog.Logger
}

// metaLimit is memberlist's limit on node metadata.
const metaLimit = memberlist.MetaMaxSize

// Validate reports every problem of cfg, naming the field and what is
// valid.
func (cfg *Config) Validate() error {
	var errs []error
	if err := transport.ValidateName("node", cfg.Name); err != nil {
		errs = append(errs, fmt.Errorf("membership: Name: %w", err))
	}
	switch cfg.Preset {
	case "", PresetLAN, PresetWAN, PresetLocal:
	default:
		errs = append(errs, fmt.Errorf("membership: Preset %q is unknown; valid presets are %q, %q and %q", cfg.Preset, PresetLAN, PresetWAN, PresetLocal))
	}
	if cfg.Transport == nil {
		if cfg.Bind != "" {
			if _, _, err := splitHostPort("Bind", cfg.Bind, true); err != nil {
				errs = append(errs, err)
			}
		}
		if cfg.Advertise != "" {
			if _, _, err := splitHostPort("Advertise", cfg.Advertise, false); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for i, s := range cfg.Seeds {
		if _, _, err := splitHostPort(fmt.Sprintf("Seeds[%d]", i), s, false); err != nil {
			errs = append(errs, err)
		}
	}
	for i, k := range cfg.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			errs = append(errs, fmt.Errorf("membership: Keys[%d] is %d bytes; a gossip key is 16, 24 or 32 bytes (AES-128, AES-192 or AES-256)", i, len(k)))
		}
	}
	if cfg.Colocated < 0 || cfg.Colocated > maxColocated {
		errs = append(errs, fmt.Errorf("membership: Colocated is %d; it must be 0..%d (0: the memberships in this process)", cfg.Colocated, maxColocated))
	}
	if err := cfg.Timing.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.Broadcasts.validate(); err != nil {
		errs = append(errs, err)
	}
	r := cfg.Retry
	if r.Backoff < 0 || r.MaxBackoff < 0 || r.Timeout < 0 {
		errs = append(errs, fmt.Errorf("membership: Retry has a negative duration (%+v); use 0 for the default", r))
	}
	return errors.Join(errs...)
}

func (t Timing) validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ProbeInterval", t.ProbeInterval}, {"ProbeTimeout", t.ProbeTimeout},
		{"GossipInterval", t.GossipInterval}, {"GossipToTheDeadTime", t.GossipToTheDeadTime},
		{"PushPullInterval", t.PushPullInterval}, {"TCPTimeout", t.TCPTimeout},
		{"DeadNodeReclaimTime", t.DeadNodeReclaimTime}, {"ReconnectInterval", t.ReconnectInterval},
		{"ReconnectTimeout", t.ReconnectTimeout}, {"JoinResync", t.JoinResync},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("membership: Timing.%s is %v; it must be positive (0 keeps the preset's)", d.name, d.v))
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"IndirectChecks", t.IndirectChecks}, {"SuspicionMult", t.SuspicionMult},
		{"SuspicionMaxTimeoutMult", t.SuspicionMaxTimeoutMult}, {"AwarenessMaxMultiplier", t.AwarenessMaxMultiplier},
		{"GossipNodes", t.GossipNodes}, {"RetransmitMult", t.RetransmitMult},
	} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("membership: Timing.%s is %d; it must be positive (0 keeps the preset's)", n.name, n.v))
		}
	}
	if t.ProbeInterval > 0 && t.ProbeTimeout > t.ProbeInterval {
		errs = append(errs, fmt.Errorf("membership: Timing.ProbeTimeout %v exceeds ProbeInterval %v", t.ProbeTimeout, t.ProbeInterval))
	}
	return errors.Join(errs...)
}

// splitHostPort parses a host:port address. The host must be an IP
// address or a name; the port a number (0 allowed only where anyPort).
func splitHostPort(field, addr string, anyPort bool) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("membership: %s %q is not host:port (e.g. 127.0.0.1:7946): %v", field, addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 || (port == 0 && !anyPort) {
		valid := "1-65535"
		if anyPort {
			valid = "0-65535 (0: any free port)"
		}
		return "", 0, fmt.Errorf("membership: %s %q has port %q; valid ports are %s", field, addr, p, valid)
	}
	if host == "" {
		return "", 0, fmt.Errorf("membership: %s %q has no host (e.g. 127.0.0.1:%d)", field, addr, port)
	}
	return host, port, nil
}

// Preset returns memberlist's configuration for a preset name, with Troupe's
// changes for "local" at one node per CPU (see LocalTiming for more).
func Preset(name string) (*memberlist.Config, error) {
	return preset(name, 1, 1)
}

func preset(name string, colocated int, cpus float64) (*memberlist.Config, error) {
	switch name {
	case "", PresetLAN:
		return memberlist.DefaultLANConfig(), nil
	case PresetWAN:
		return memberlist.DefaultWANConfig(), nil
	case PresetLocal:
		c := memberlist.DefaultLocalConfig()
		LocalTiming(colocated, cpus).apply(c)
		// Nodes on one machine: bandwidth is free, CPU is not (LZW on
		// every state sync was the largest part of SWIM's CPU after GC).
		c.EnableCompression = false
		return c, nil
	}
	return nil, fmt.Errorf("membership: Preset %q is unknown; valid presets are %q, %q and %q", name, PresetLAN, PresetWAN, PresetLocal)
}

// maxColocated bounds Config.Colocated.
const maxColocated = 100_000

// localBaseLoad is the nodes per CPU up to which the "local" preset keeps
// its fastest timings.
const localBaseLoad = 8

// LocalTiming is the "local" preset for colocated nodes sharing cpus CPUs
// (the CPUs free for them: see MachineCPUs). With load L = colocated/cpus
// nodes per CPU and stretch s = max(1, sqrt(L/8)):
//
//	probe interval   200ms·s        probe timeout  100ms·s
//	suspicion mult   3, and 5 when s > 1 (Lifeguard waits for 3 confirmations)
//	suspicion max    2× the minimum, and 6× when s > 1
//	indirect probes  1, and 3 when s > 1 (Lifeguard's nacks)
//	gossip           every 100ms·sqrt(s) to 3 members, 4·log10(N+1) retransmits
//	push-pull        every 2s·s (memberlist stretches it further beyond 32 members)
//	TCP timeout      1s·s
//	join resync      400ms·sqrt(s)
//	awareness        8 (Lifeguard may slow a struggling node's probes 8×)
//
// Why: a node's share of the CPU is 1/L; the delay before a goroutine runs
// — what a probe's timeout must cover — grows with the runnable goroutines
// per CPU, and a stall of one node (or of the machine, to steal) hits the
// other nodes' probes of it all at once. SWIM's expected detection time
// does not depend on the cluster size (every member is probed about once
// per probe interval), and memberlist already stretches suspicions,
// retransmits and push-pulls with log N; what must grow with L is the
// slack of every timeout, by sqrt(L) so that detection stays within a few
// seconds at 200 nodes on 2 CPUs. docs/membership.md has the measurements
// behind the constants.
func LocalTiming(colocated int, cpus float64) Timing {
	load := float64(max(colocated, 1)) / max(cpus, 0.01)
	s := max(1, math.Sqrt(load/localBaseLoad))
	scale := func(d time.Duration, f float64) time.Duration {
		return (time.Duration(float64(d) * f)).Round(time.Millisecond)
	}
	t := Timing{
		ProbeInterval:           scale(200*time.Millisecond, s),
		ProbeTimeout:            scale(100*time.Millisecond, s),
		IndirectChecks:          1,
		SuspicionMult:           3,
		SuspicionMaxTimeoutMult: 2,
		AwarenessMaxMultiplier:  8,
		GossipInterval:          scale(100*time.Millisecond, math.Sqrt(s)),
		GossipNodes:             3,
		GossipToTheDeadTime:     5 * time.Second,
		RetransmitMult:          4,
		PushPullInterval:        scale(2*time.Second, s),
		TCPTimeout:              scale(time.Second, s),
		JoinResync:              scale(400*time.Millisecond, math.Sqrt(s)),
	}
	if s > 1 {
		// Lifeguard's own ratios: a suspicion waits for 3 independent
		// confirmations before it is cut to its minimum, and lasts six
		// times that without them.
		t.SuspicionMult, t.SuspicionMaxTimeoutMult = 5, 6
		// Three indirect probes: their nacks are how Lifeguard tells a
		// node that it is the slow one (awareness), and they confirm a
		// live member that the prober's own direct probe missed.
		t.IndirectChecks = 3
	}
	return t
}

// String lists the non-zero timings.
func (t Timing) String() string {
	var parts []string
	v := reflect.ValueOf(t)
	for i := range v.NumField() {
		if f := v.Field(i); !f.IsZero() {
			parts = append(parts, fmt.Sprintf("%s=%v", v.Type().Field(i).Name, f.Interface()))
		}
	}
	return strings.Join(parts, " ")
}

// colocated counts the memberships running in this process (Config.Colocated's default).
var colocated atomic.Int64

// machine is the CPUs free for this process's memberships, measured when
// the first of them starts and kept while any runs, so that every node of
// an in-process cluster gets the same timings.
var machine struct {
	sync.Mutex
	cpus float64
}

// maxBusy bounds how far other work on the machine may stretch the local
// preset.
const maxBusy = 16

// MachineCPUs is the CPUs the local preset counts on: GOMAXPROCS (the
// CPUs, or the container's quota), divided by how busy the machine
// already is — its 1-minute load average per CPU, when above 1, up to 16
// (from /proc/loadavg; where there is none, GOMAXPROCS alone). Nodes that
// share two CPUs with other busy processes get their timeouts stretched as
// if there were fewer CPUs, which there are for them. It is measured when
// the process's first membership starts and kept while any runs.
func MachineCPUs() float64 {
	machine.Lock()
	defer machine.Unlock()
	if machine.cpus == 0 || colocated.Load() == 0 {
		machine.cpus = float64(runtime.GOMAXPROCS(0)) / busyness()
	}
	return machine.cpus
}

// busyness is the machine's runnable threads per CPU (1-minute load
// average over the CPU count), at least 1, at most maxBusy.
func busyness() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 1
	}
	load, err := strconv.ParseFloat(f[0], 64)
	if err != nil || load != load {
		return 1
	}
	return min(max(load/float64(runtime.NumCPU()), 1), maxBusy)
}

// apply writes the non-zero timings over c (Validate refused negative
// ones).
func (t Timing) apply(c *memberlist.Config) {
	c.ProbeInterval = cmp.Or(t.ProbeInterval, c.ProbeInterval)
	c.ProbeTimeout = cmp.Or(t.ProbeTimeout, c.ProbeTimeout)
	c.IndirectChecks = cmp.Or(t.IndirectChecks, c.IndirectChecks)
	c.SuspicionMult = cmp.Or(t.SuspicionMult, c.SuspicionMult)
	c.SuspicionMaxTimeoutMult = cmp.Or(t.SuspicionMaxTimeoutMult, c.SuspicionMaxTimeoutMult)
	c.AwarenessMaxMultiplier = cmp.Or(t.AwarenessMaxMultiplier, c.AwarenessMaxMultiplier)
	c.GossipInterval = cmp.Or(t.GossipInterval, c.GossipInterval)
	c.GossipNodes = cmp.Or(t.GossipNodes, c.GossipNodes)
	c.GossipToTheDeadTime = cmp.Or(t.GossipToTheDeadTime, c.GossipToTheDeadTime)
	c.RetransmitMult = cmp.Or(t.RetransmitMult, c.RetransmitMult)
	c.PushPullInterval = cmp.Or(t.PushPullInterval, c.PushPullInterval)
	c.TCPTimeout = cmp.Or(t.TCPTimeout, c.TCPTimeout)
	c.DeadNodeReclaimTime = cmp.Or(t.DeadNodeReclaimTime, c.DeadNodeReclaimTime)
}

func (r JoinRetry) withDefaults() JoinRetry {
	r.Backoff = cmp.Or(r.Backoff, 100*time.Millisecond)
	r.MaxBackoff = cmp.Or(r.MaxBackoff, 2*time.Second)
	r.Timeout = cmp.Or(r.Timeout, 30*time.Second)
	return r
}

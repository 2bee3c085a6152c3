package membership

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/security"
)

// Errors of Join. Test with errors.Is.
var (
	// ErrNameTaken: a live member already has this node's name.
	ErrNameTaken = errors.New("membership: node name already taken by a live member")
	// ErrKeyMismatch: the seed gossips with other keys (or none).
	ErrKeyMismatch = errors.New("membership: gossip keys do not match the seed's")
	// ErrCertificate: the seed refused this node's TLS certificate, or this
	// node refused the seed's: they do not share the cluster's CA.
	ErrCertificate = errors.New("membership: TLS certificates refused")
	// ErrNoSeed: no seed answered before Retry.Timeout.
	ErrNoSeed = errors.New("membership: no seed answered")
	// ErrShutdown: the membership was shut down.
	ErrShutdown = errors.New("membership: shut down")
)

// memberlist's log rate limit (logLimiter): one line of each kind per
// logInterval, and logBudget lines of all kinds.
const (
	logInterval = 10 * time.Second
	logBudget   = 10
)

// Membership is one node's SWIM membership: it joins the cluster, keeps a
// view of every member, and publishes each change as an Event to its
// subscribers, in order, from one goroutine. It is safe for concurrent use.
type Membership struct {
	cfg     Config
	log     zerolog.Logger
	ml      *memberlist.Memberlist
	keyring *memberlist.Keyring
	tr      *countingTransport
	meta    []byte
	self    Member

	gossipInterval, probeInterval time.Duration
	reconnectEvery, reconnectFor  time.Duration
	joinResync                    time.Duration

	mu       sync.Mutex
	view     map[actors.NodeName]Member
	subs     map[int]subscriber
	nextSub  int
	queue    []Event
	conflict error
	closed   bool
	wake     chan struct{}
	done     chan struct{}  // closed by Shutdown
	wg       sync.WaitGroup // dispatch and reconnect
	failedAt map[actors.NodeName]time.Time
	// queued counts the events ever queued, dispatched those handed out
	// (under mu): the event at the head of the queue is number dispatched.
	queued, dispatched uint64

	remembered []Remembered  // read from cfg.Memory at start
	memWake    chan struct{} // the view changed: write cfg.Memory

	table      swimTable                      // memberlist's member table (swim.go)
	swim       map[actors.NodeName]*swimState // each member's entry in it, under mu
	ownSuspect map[actors.NodeName]time.Time  // this node's probe failed: about to suspect
	sweepNow   chan struct{}

	suspicions       atomic.Int64 // raised by this node's probes
	gossipSuspicions atomic.Int64 // learnt from other nodes
	refutations      atomic.Int64 // members that refuted a suspicion (higher incarnation)
	selfRefutations  atomic.Int64 // suspicions (or deaths) of this node it refuted
	failures         atomic.Int64 // members declared failed (confirmed dead)
	probes           atomic.Int64
	probeFails       atomic.Int64
	refusedNames     atomic.Int64
	logs             *logLimiter

	pk    *packets                            // datagrams and gossip (packets.go)
	nodes map[actors.NodeName]memberlist.Node // memberlist's node of each member, copied, under mu
}

// New validates cfg, starts SWIM on its address (or transport) and returns
// the membership, not yet joined: call Join.
func New(cfg Config) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TLS != nil && actors.NodeName(cfg.TLS.Subject()) != cfg.Name {
		return nil, fmt.Errorf("%w: node %s cannot use a certificate issued for node %q; each node needs its own, naming it (node certs)", ErrCertificate, cfg.Name, cfg.TLS.Subject())
	}
	return newMembership(cfg)
}

// newMembership is New without the check of the certificate's name (a
// test's impostor skips it).
func newMembership(cfg Config) (*Membership, error) {
	cfg.Generation = cmp.Or(cfg.Generation, uint64(time.Now().UnixNano()))
	cfg.Bind = cmp.Or(cfg.Bind, "127.0.0.1:0")
	cfg.Colocated = cmp.Or(cfg.Colocated, int(colocated.Load())+1)
	cpus := MachineCPUs()
	mlc, err := preset(cfg.Preset, cfg.Colocated, cpus)
	if err != nil {
		return nil, err
	}
	var base Timing // the preset's timings of Troupe's own
	if cfg.Preset == PresetLocal {
		base = LocalTiming(cfg.Colocated, cpus)
	}
	cfg.Timing.apply(mlc)
	if mlc.DeadNodeReclaimTime == 0 {
		// A restarted node may come back at another address (a new port)
		// as soon as its old incarnation is dead or has left.
		mlc.DeadNodeReclaimTime = time.Nanosecond
	}
	m := &Membership{
		cfg:        cfg,
		log:        cfg.Logger.With().Str("node", string(cfg.Name)).Str("component", "membership").Logger(),
		view:       map[actors.NodeName]Member{},
		subs:       map[int]subscriber{},
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		failedAt:   map[actors.NodeName]time.Time{},
		memWake:    make(chan struct{}, 1),
		swim:       map[actors.NodeName]*swimState{},
		ownSuspect: map[actors.NodeName]time.Time{},
		sweepNow:   make(chan struct{}, 1),
		nodes:      map[actors.NodeName]memberlist.Node{},
	}
	meta, err := proto.Marshal(&messages.MemberMeta{Name: string(cfg.Name), Address: cfg.Address, Kinds: cfg.Kinds, Generation: cfg.Generation})
	if err != nil {
		return nil, fmt.Errorf("membership: encoding metadata: %w", err)
	}
	if len(meta) > metaLimit {
		return nil, fmt.Errorf("membership: node %s: metadata is %d bytes (name, address and %d kinds); memberlist allows %d", cfg.Name, len(meta), len(cfg.Kinds), metaLimit)
	}
	m.meta = meta
	m.gossipInterval, m.probeInterval = mlc.GossipInterval, mlc.ProbeInterval
	m.reconnectEvery = cmp.Or(cfg.Timing.ReconnectInterval, 2*mlc.PushPullInterval)
	m.reconnectFor = cmp.Or(cfg.Timing.ReconnectTimeout, time.Hour)
	m.joinResync = cmp.Or(cfg.Timing.JoinResync, base.JoinResync, 2*mlc.ProbeInterval)

	m.logs = newLogLimiter(logInterval, logBudget)
	logger := log.New(&logBridge{m: m, limit: m.logs}, "", 0)
	mlc.Name = string(cfg.Name)
	mlc.Logger = logger
	mlc.Delegate = (*delegate)(m)
	mlc.Events = (*delegate)(m)
	mlc.Conflict = (*delegate)(m)
	mlc.Ping = (*delegate)(m)
	mlc.Alive = (*delegate)(m)
	mlc.Merge = (*delegate)(m)
	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys[1:], cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("membership: keyring: %w", err)
		}
		mlc.Keyring = kr
		m.keyring = kr
	}
	// Before memberlist starts: its listeners may hand user messages to
	// the delegate at once.
	m.pk = newPackets(m, mlc, cfg.Broadcasts)
	inner := cfg.Transport
	if inner == nil {
		host, port, _ := splitHostPort("Bind", cfg.Bind, true)
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("membership: node %s: listening on %s: %w", cfg.Name, cfg.Bind, err)
		}
		inner = nt
		if cfg.Advertise != "" {
			ahost, aport, _ := splitHostPort("Advertise", cfg.Advertise, false)
			mlc.AdvertiseAddr, mlc.AdvertisePort = ahost, aport
		} else {
			mlc.AdvertiseAddr, mlc.AdvertisePort = "", 0
		}
	}
	m.tr = newCountingTransport(inner, cfg.TLS)
	m.tr.memberAt = m.memberAt
	m.tr.refusals = security.NewLogLimiter(m.log, 10, 10*time.Second)
	mlc.Transport = m.tr
	ml, err := memberlist.Create(mlc)
	if err != nil {
		_ = m.tr.Shutdown()
		return nil, fmt.Errorf("membership: node %s: starting SWIM: %w", cfg.Name, err)
	}
	m.ml = ml
	m.pk.ml.Store(ml)
	if m.table, err = inspect(ml); err != nil {
		_ = ml.Shutdown()
		return nil, err
	}
	ln := ml.LocalNode()
	// memberlist's listeners run already: a peer's push-pull can reach
	// delegate.observe, which reads self under mu.
	m.mu.Lock()
	m.self = Member{Name: cfg.Name, Address: cfg.Address, Kinds: slices.Clone(cfg.Kinds), Generation: cfg.Generation, Gossip: ln.Address()}
	m.mu.Unlock()
	m.loadMemory()
	colocated.Add(1)
	m.wg.Add(3)
	go m.dispatch()
	go m.reconnect()
	go m.sweeper()
	if cfg.Memory != "" {
		m.wg.Add(1)
		go m.remember()
	}
	return m, nil
}

// Name is this node's name.
func (m *Membership) Name() actors.NodeName { return m.cfg.Name }

// GossipAddr is this node's SWIM address (host:port), for other nodes'
// Seeds.
func (m *Membership) GossipAddr() string { return m.self.Gossip }

// Join joins the cluster through the configured seeds (none: this node
// starts a cluster of its own) and the members remembered in
// Config.Memory. It tries every seed, and retries with backoff until one
// answers (or a remembered member did), ctx ends or Retry.Timeout passes.
// It fails at once if the seeds use other gossip keys, refuse this node's
// TLS certificate (or it theirs), or a live member has this name.
//
// The remembered members are joined in the background, each on its own,
// until one answers, another node joins this one, or
// Timing.ReconnectTimeout passes; without seeds Join returns at once.
func (m *Membership) Join(ctx context.Context) error {
	seeds := slices.DeleteFunc(slices.Clone(m.cfg.Seeds), func(s string) bool { return s == m.self.Gossip })
	// The remembered members are tried in the background, each on its
	// own (one that is gone may take a TCP timeout to fail): they do not
	// slow down the seeds, and they do when the seeds are down.
	m.rejoinRemembered()
	if len(seeds) == 0 {
		return nil
	}
	r := m.cfg.Retry.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	wait := r.Backoff
	for attempt := 1; ; attempt++ {
		n, err := m.ml.Join(seeds)
		if cerr := m.takeConflict(); cerr != nil {
			return cerr
		}
		if err != nil && isKeyError(err) {
			err = fmt.Errorf("%w: node %s joining through %v: %v (check that every node has the same keys in Keys)", ErrKeyMismatch, m.cfg.Name, seeds, err)
			m.log.Error().Err(err).Msg("cannot join: gossip keys differ")
			return err
		}
		if err != nil && n == 0 && isCertError(err) {
			err = fmt.Errorf("%w: node %s joining through %v: %v (check that every node has a certificate of the same CA: tls.ca, tls.cert, tls.key)", ErrCertificate, m.cfg.Name, seeds, err)
			m.log.Error().Err(err).Msg("cannot join: TLS refused")
			return err
		}
		if n > 0 {
			m.log.Debug().Int("seeds_reached", n).Int("attempts", attempt).Msg("joined")
			m.resyncLater(seeds)
			return nil
		}
		if m.othersLive() {
			m.log.Info().Strs("seeds", seeds).Int("attempts", attempt).Msg("no seed answered, joined through remembered members")
			return nil
		}
		m.log.Debug().Err(err).Int("attempt", attempt).Dur("retry_in", wait).Msg("no seed answered")
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: node %s tried %v %d times: %v", ErrNoSeed, m.cfg.Name, seeds, attempt, err)
		case <-m.done:
			return ErrShutdown
		case <-time.After(wait):
		}
		wait = min(2*wait, r.MaxBackoff)
	}
}

func isKeyError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "decrypt") || strings.Contains(s, "encryption is not configured") ||
		strings.Contains(s, "remote state is not encrypted")
}

// isCertError tells a TLS refusal (by either side) from a seed that is
// not there yet.
func isCertError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "certificate") || strings.Contains(s, "tls:")
}

func (m *Membership) takeConflict() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.conflict
	m.conflict = nil
	return err
}

// Leave announces this node's departure, waits up to timeout for the
// announcement to go out, and shuts down. Other nodes report it as left.
//
// Between the announcement and the shutdown the node keeps answering
// probes for a few gossip rounds (as serf's LeavePropagateDelay does):
// a node that probes it before the news arrives would otherwise suspect it
// and could declare it failed rather than left.
func (m *Membership) Leave(timeout time.Duration) error {
	start := time.Now()
	err := m.ml.Leave(timeout)
	if err == nil {
		linger := max(5*m.gossipInterval, m.probeInterval)
		if rest := timeout - time.Since(start); timeout > 0 && rest < linger {
			linger = max(rest, 0)
		}
		select {
		case <-time.After(linger):
		case <-m.done:
		}
	}
	return errors.Join(err, m.Shutdown())
}

// Shutdown stops SWIM without a goodbye (other nodes will report this one
// failed) and stops publishing events. It returns when every goroutine of
// the membership has exited.
func (m *Membership) Shutdown() error {
	err := m.ml.Shutdown()
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.done)
		colocated.Add(-1)
	}
	m.mu.Unlock()
	m.wg.Wait()
	return err
}

// View returns a copy of the current view.
func (m *Membership) View() View {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.viewLocked()
}

func (m *Membership) viewLocked() View {
	v := View{Self: m.self.clone()}
	if mem, ok := m.view[m.self.Name]; ok {
		v.Self = mem.clone() // with SWIM's incarnation
	}
	for _, mem := range m.view {
		v.Members = append(v.Members, mem.clone())
	}
	if _, ok := m.view[m.self.Name]; !ok {
		v.Members = append(v.Members, v.Self)
	}
	slices.SortFunc(v.Members, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return v
}

// Subscribe calls fn with every later event, in order, from one goroutine
// (fn must not block for long). It returns the view at subscription time,
// so that the subscriber misses nothing, and a function that cancels. The
// events already in that view (queued, not yet dispatched) are not given
// to fn.
func (m *Membership) Subscribe(fn func(Event)) (View, func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := m.nextSub
	m.nextSub++
	m.subs[id] = subscriber{fn: fn, from: m.queued}
	return m.viewLocked(), func() {
		m.mu.Lock()
		delete(m.subs, id)
		m.mu.Unlock()
	}
}

// Stats are counters of one node's membership.
type Stats struct {
	Alive, Suspect, Failed, Left int    // members per state in this view (self included)
	Probes                       int64  // probes of this node answered directly
	ProbeFailures                int64  // probes of this node that got no direct ack
	Suspicions                   int64  // suspicions this node's probes raised
	GossipSuspicions             int64  // suspicions this node learnt from others' gossip
	Refutations                  int64  // suspicions members refuted (alive with a higher incarnation)
	SelfRefutations              int64  // suspicions or deaths of this node it refuted
	Failures                     int64  // members declared failed (confirmed dead) in this view
	Incarnation                  uint32 // this node's SWIM incarnation
	HealthScore                  int    // Lifeguard's awareness: 0 is healthy, higher is struggling
	PacketsSent, PacketsReceived int64
	BytesSent, BytesReceived     int64 // gossip packets and streams
	// RefusedMembers counts alive messages refused because the member's
	// name is not a node name (transport.ValidateName).
	RefusedMembers int64
	// LogSuppressed counts memberlist log lines held back by the rate
	// limit: one line of each kind per 10s, ten lines of all kinds.
	LogSuppressed int64
	// RefusedPeers counts what the TLS checks refused: a stream dialled to
	// a member answered by another's certificate, a state or an alive
	// message in which a peer speaks as another node than its
	// certificate's (identity.go).
	RefusedPeers int64
	// Packets counts datagrams and gossip broadcasts (Packets).
	Packets PacketStats
}

// Stats returns the counters.
func (m *Membership) Stats() Stats {
	s := Stats{
		Probes:           m.probes.Load(),
		ProbeFailures:    m.probeFails.Load(),
		Suspicions:       m.suspicions.Load(),
		GossipSuspicions: m.gossipSuspicions.Load(),
		Refutations:      m.refutations.Load(),
		SelfRefutations:  m.selfRefutations.Load(),
		Failures:         m.failures.Load(),
		HealthScore:      m.ml.GetHealthScore(),
		PacketsSent:      m.tr.packetsOut.Load(),
		PacketsReceived:  m.tr.packetsIn.Load(),
		BytesSent:        m.tr.bytesOut.Load(),
		BytesReceived:    m.tr.bytesIn.Load(),
		RefusedMembers:   m.refusedNames.Load(),
		LogSuppressed:    m.logs.suppressed.Load(),
		RefusedPeers:     m.tr.refused.Load(),
		Packets:          m.pk.stats(),
	}
	v := m.View()
	s.Incarnation = v.Self.Incarnation
	for _, mem := range v.Members {
		switch mem.State {
		case Alive:
			s.Alive++
		case Suspect:
			s.Suspect++
		case Failed:
			s.Failed++
		case Left:
			s.Left++
		}
	}
	return s
}

// SetKinds changes the kinds this node announces and spreads the change
// (other nodes see MemberUpdated).
func (m *Membership) SetKinds(kinds []string, timeout time.Duration) error {
	m.mu.Lock()
	m.self.Kinds = slices.Clone(kinds)
	meta, err := proto.Marshal(&messages.MemberMeta{Name: string(m.self.Name), Address: m.self.Address, Kinds: kinds, Generation: m.self.Generation})
	if err == nil && len(meta) > metaLimit {
		err = fmt.Errorf("membership: metadata with %d kinds is %d bytes; memberlist allows %d", len(kinds), len(meta), metaLimit)
	}
	if err == nil {
		m.meta = meta
	}
	m.mu.Unlock()
	if err != nil {
		return err
	}
	return m.ml.UpdateNode(timeout)
}

// The keyring. Rotating the key without downtime: InstallKey(new) on every
// node, then UseKey(new) on every node, then RemoveKey(old) on every node;
// each step must reach every node before the next starts.

// InstallKey adds a key that this node accepts on receive.
func (m *Membership) InstallKey(key []byte) error {
	if m.keyring == nil {
		return errors.New("membership: gossip is not encrypted (no Keys at start); a keyring cannot be added to a running node")
	}
	if err := memberlist.ValidateKey(key); err != nil {
		return fmt.Errorf("membership: key is %d bytes; a gossip key is 16, 24 or 32 bytes", len(key))
	}
	return m.keyring.AddKey(key)
}

// UseKey makes an installed key the one this node encrypts with.
func (m *Membership) UseKey(key []byte) error {
	if m.keyring == nil {
		return errors.New("membership: gossip is not encrypted (no Keys at start)")
	}
	return m.keyring.UseKey(key)
}

// RemoveKey removes an installed key other than the one in use.
func (m *Membership) RemoveKey(key []byte) error {
	if m.keyring == nil {
		return errors.New("membership: gossip is not encrypted (no Keys at start)")
	}
	return m.keyring.RemoveKey(key)
}

// Keys lists the installed keys, the one in use first.
func (m *Membership) Keys() [][]byte {
	if m.keyring == nil {
		return nil
	}
	return m.keyring.GetKeys()
}

// publish updates the view and queues the events, under mu.
func (m *Membership) publishLocked(evs ...Event) {
	for _, ev := range evs {
		mem := ev.Of()
		m.view[mem.Name] = mem
		m.queue = append(m.queue, ev)
		m.queued++
		if mem.State == Failed {
			m.failures.Add(1)
			m.failedAt[mem.Name] = time.Now()
		} else {
			delete(m.failedAt, mem.Name)
		}
	}
	m.memoryChangedLocked()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// resyncLater syncs state once more, with a random live member, after
// joinResync plus up to as much again at random (so that nodes started
// together do not all sync at once): news of the nodes that joined at the
// same time as this one reaches it then at the latest.
func (m *Membership) resyncLater(seeds []string) {
	wait := m.joinResync + time.Duration(rand.Int64N(int64(m.joinResync)+1))
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		select {
		case <-time.After(wait):
		case <-m.done:
			return
		}
		// Sync with a random live member rather than the seeds, so that
		// nodes started together do not all load the seeds at once.
		target := seeds
		if live := m.View().Live(); len(live) > 1 {
			if mem := live[rand.IntN(len(live))]; mem.Name != m.self.Name {
				target = []string{mem.Gossip}
			}
		}
		if _, err := m.ml.Join(target); err != nil {
			m.log.Debug().Err(err).Msg("resync after join failed")
		}
		_ = m.takeConflict()
	}()
}

// reconnect tries, every reconnectEvery, to join through one member that
// failed less than reconnectFor ago: if it is back (a partition healed, a
// node restarted at the same address) the two views merge.
func (m *Membership) reconnect() {
	defer m.wg.Done()
	tick := time.NewTicker(m.reconnectEvery)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-tick.C:
		case <-m.done:
			return
		}
		m.mu.Lock()
		var addrs []string
		for name, at := range m.failedAt {
			if time.Since(at) < m.reconnectFor {
				addrs = append(addrs, m.view[name].Gossip)
			}
		}
		m.mu.Unlock()
		if len(addrs) == 0 {
			continue
		}
		slices.Sort(addrs)
		addr := addrs[n%len(addrs)]
		if _, err := m.ml.Join([]string{addr}); err != nil {
			m.log.Debug().Err(err).Str("member", addr).Msg("failed member still unreachable")
		}
		_ = m.takeConflict() // a conflict here was logged; Join reports only its own
	}
}

// subscriber is a Subscribe callback and the number of the first event it
// is given (the ones before are in the view Subscribe returned).
type subscriber struct {
	fn   func(Event)
	from uint64
}

// dispatch hands queued events to subscribers, in order, outside
// memberlist's locks.
func (m *Membership) dispatch() {
	defer m.wg.Done()
	for {
		select {
		case <-m.wake:
		case <-m.done:
			return
		}
		for {
			m.mu.Lock()
			if len(m.queue) == 0 {
				m.mu.Unlock()
				break
			}
			ev := m.queue[0]
			m.queue = m.queue[1:]
			seq := m.dispatched
			m.dispatched++
			ids := slices.Sorted(maps.Keys(m.subs)) // in subscription order
			subs := make([]func(Event), 0, len(ids))
			for _, id := range ids {
				if sub := m.subs[id]; seq >= sub.from { // else its view holds ev
					subs = append(subs, sub.fn)
				}
			}
			m.mu.Unlock()
			m.logEvent(ev)
			for _, fn := range subs {
				fn(ev)
			}
		}
	}
}

func (m *Membership) logEvent(ev Event) {
	mem := ev.Of()
	e := m.log.Info()
	if _, ok := ev.(*MemberSuspect); ok {
		e = m.log.Debug()
	}
	verb, _, _ := strings.Cut(fmt.Sprint(ev), " ")
	e.Str("member", string(mem.Name)).Uint64("generation", mem.Generation).Uint32("incarnation", mem.Incarnation).Str("state", mem.State.String()).
		Msg("member " + verb)
}

// member builds a Member from a memberlist node.
func (m *Membership) member(n *memberlist.Node, st State) Member {
	mem := Member{Name: actors.NodeName(n.Name), Gossip: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))), State: st}
	var meta messages.MemberMeta
	if err := proto.Unmarshal(n.Meta, &meta); err != nil || (meta.Name != "" && meta.Name != n.Name) {
		m.log.Warn().Str("member", n.Name).Msg("member's metadata is not Troupe's: it has no remote address or kinds")
		return mem
	}
	mem.Address, mem.Kinds, mem.Generation = meta.Address, meta.Kinds, meta.Generation
	return mem
}

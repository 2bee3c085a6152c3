package consensus_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/transport/remote"
	"github.com/troupe-dev/troupe/transport/sim"
)

// blobSize is the state of the blob machine once grown: its snapshot is
// 64 MiB, sixteen times an envelope; 16 MiB under -race, which makes
// growing, checksumming and encoding it ten times slower.
var blobSize = func() int {
	if actortest.RaceEnabled {
		return 16 << 20
	}
	return 64 << 20
}()

// blobStep is how much one command grows the blob.
var blobStep = blobSize / 4

// blobMachine is a state machine whose state is a deterministic blob,
// grown blobStep bytes per command (a command names the size to grow to:
// applying it twice changes nothing), proposed by the leader's Tick until
// the blob is blobSize. Four commands make a 64 MiB snapshot, so the log
// stays small.
type blobMachine struct {
	state    []byte
	proposed int // the tick of the last proposal
	ticks    int
	seen     *blobSeen
}

// blobSeen is what the test reads of a node's machine: its size and
// checksum, published after each change.
type blobSeen struct{ size, crc atomic.Int64 }

func (m *blobMachine) Register(*consensus.Router) {}

func (m *blobMachine) Apply(c consensus.Command) (any, error) {
	if len(c.Data) != 8 {
		return nil, fmt.Errorf("a blob command of %d bytes, want 8", len(c.Data))
	}
	target := int(min(binary.BigEndian.Uint64(c.Data), uint64(blobSize)))
	if target > len(m.state) {
		m.state = growBlob(m.state, target)
		m.publish()
	}
	return nil, nil
}

func (m *blobMachine) Snapshot() ([]byte, error) { return m.state, nil } // Apply never writes in place

func (m *blobMachine) Restore(b []byte) error {
	if len(b) > blobSize || len(b)%8 != 0 {
		return fmt.Errorf("a blob snapshot of %d bytes", len(b))
	}
	m.state = b
	m.publish()
	return nil
}

func (m *blobMachine) Tick(_ time.Time, leader bool, p consensus.Proposer) {
	m.ticks++
	if !leader || len(m.state) >= blobSize || m.ticks-m.proposed < 20 {
		return
	}
	m.proposed = m.ticks
	p.Propose(binary.BigEndian.AppendUint64(nil, uint64(len(m.state)+blobStep)))
}

func (m *blobMachine) publish() {
	m.seen.crc.Store(int64(crc32.ChecksumIEEE(m.state)))
	m.seen.size.Store(int64(len(m.state)))
}

// growBlob extends b to n bytes (a multiple of 8) of a fixed sequence.
func growBlob(b []byte, n int) []byte {
	out := make([]byte, n)
	copy(out, b)
	for i := len(b); i < n; i += 8 {
		x := uint64(i) * 0x9E3779B97F4A7C15
		x ^= x >> 31
		binary.LittleEndian.PutUint64(out[i:], x)
	}
	return out
}

type blobGroup struct {
	*group
	seen sync.Map // node name → *blobSeen of its latest machine
	want int64    // the checksum of the full blob
}

func (b *blobGroup) seenOf(n actors.NodeName) *blobSeen {
	v, _ := b.seen.LoadOrStore(n, &blobSeen{})
	return v.(*blobSeen)
}

func (b *blobGroup) full(n actors.NodeName) bool {
	s := b.seenOf(n)
	return s.size.Load() == int64(blobSize) && s.crc.Load() == b.want
}

// newBlobGroup starts 3 nodes hosting the key-value store and the blob
// machine, and waits until every node holds the full blob.
func newBlobGroup(t *testing.T, faults sim.Faults, loopback bool, opts ...cluster.Option) *blobGroup {
	b := &blobGroup{want: int64(crc32.ChecksumIEEE(growBlob(nil, blobSize)))}
	blob := consensus.Machine{Name: "blob", New: func(env consensus.Env) consensus.StateMachine {
		s := b.seenOf(env.Node)
		s.size.Store(0)
		return &blobMachine{seen: s}
	}}
	g := consensustest.Start(t, consensustest.Options{Nodes: 3, Seed: 5, Faults: faults, Loopback: loopback, Cluster: opts,
		Machines: []consensus.Machine{kv.DefaultMachine(), blob},
		Config: func(c *consensus.Config) {
			// A snapshot every 100 entries, keeping 200 behind it: a
			// follower down for a thousand writes needs one, and one that
			// installed it catches up from the log. Elections after 0.5–1 s: a
			// leader encodes 64 MiB snapshots in its handlers.
			c.SnapshotEntries, c.CatchUpEntries = 100, 200
			c.ElectionTicks = 50
			c.RequestTimeout = 5 * time.Second
		}})
	b.group = &group{Group: g, t: t, c: g.Cluster, cfg: g.Config}
	b.leader(10 * time.Second)
	for _, n := range b.c.Names() {
		actortest.Eventually(t, 20*time.Second, fmt.Sprintf("%s holds the %d MiB blob", n, blobSize>>20), func() bool { return b.full(n) })
	}
	return b
}

// writer proposes puts one after another through node `via` until stop
// is closed; it returns how many it started and the errors of those not
// acknowledged.
func (b *blobGroup) writer(via actors.NodeName, stop <-chan struct{}) func() (started int, failed []error) {
	kc := b.kv(via)
	var started int
	var failed []error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			started++
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := kc.Put(ctx, fmt.Sprintf("load-%05d", i), []byte("x"))
			cancel()
			if err != nil {
				failed = append(failed, err)
			}
		}
	}()
	return func() (int, []error) { <-done; return started, failed }
}

// lagBehindASnapshot crashes a follower, writes until the leader has
// compacted its log past the follower's, and returns the follower and
// the leader's commit index then.
func (b *blobGroup) lagBehindASnapshot(lead actors.NodeName) (actors.NodeName, uint64) {
	victim := actors.NodeName("node-3")
	if lead == victim {
		victim = "node-2"
	}
	vst, err := b.status(victim)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := b.c.Crash(victim); err != nil {
		b.t.Fatal(err)
	}
	for round := 0; ; round++ {
		putAll(b.t.(*testing.T), b.group, fmt.Sprintf("lag%d", round), 300)
		st, err := b.status(lead)
		if err != nil {
			b.t.Fatal(err)
		}
		if st.SnapshotIndex > vst.Applied+2*b.cfg.CatchUpEntries {
			return victim, st.Commit
		}
		if round == 20 {
			b.t.Fatalf("the leader did not compact its log past %s's (applied %d): %+v", victim, vst.Applied, st)
		}
	}
}

// installed reports whether node n installed a snapshot from the leader
// and applied up to commit.
func (b *blobGroup) installed(n actors.NodeName, commit uint64) bool {
	st, err := b.status(n)
	return err == nil && st.SnapshotsReceived > 0 && st.Applied >= commit
}

func raftStreams(n *actors.Node) actors.StreamStats {
	return n.Stats().Protocols[consensus.Name].Streams
}

// TestBigSnapshotReachesALaggingFollowerUnderLoad: a follower restarted
// after the leader compacted its log gets the 64 MiB snapshot as a stream
// while a writer keeps writing through the leader, and every write it
// started is acknowledged.
func TestBigSnapshotReachesALaggingFollowerUnderLoad(t *testing.T) {
	t.Run("sim", func(t *testing.T) { testBigSnapshotUnderLoad(t, false) })
	t.Run("loopback", func(t *testing.T) {
		actortest.SkipRemoteUnderRace(t)
		testBigSnapshotUnderLoad(t, true)
	})
}

func testBigSnapshotUnderLoad(t *testing.T, loopback bool) {
	b := newBlobGroup(t, sim.Faults{}, loopback)
	lead := b.leader(10 * time.Second)
	victim, commit := b.lagBehindASnapshot(lead)
	stop := make(chan struct{})
	wait := b.writer(lead, stop)
	start := time.Now()
	if _, err := b.c.Restart(victim); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 30*time.Second, fmt.Sprintf("%s installs the %d MiB snapshot", victim, blobSize>>20), func() bool { return b.installed(victim, commit) })
	took := time.Since(start)
	close(stop)
	if !b.full(victim) {
		t.Fatalf("%s installed a snapshot without the full blob", victim)
	}
	started, failed := wait()
	if len(failed) > 0 || started < 10 {
		t.Fatalf("the writer started %d writes during the transfer; %d failed: %v", started, len(failed), errors.Join(failed...))
	}
	st, err := b.status(victim)
	if err != nil || st.SnapshotsReceived == 0 {
		t.Fatalf("%s: %+v, %v; want a snapshot received", victim, st, err)
	}
	s := raftStreams(b.c.Node(lead))
	if s.Sent == 0 || s.BytesOut < int64(blobSize) {
		t.Fatalf("the leader streamed %+v; want the %d MiB snapshot", s, blobSize>>20)
	}
	leadSt, _ := b.status(lead)
	actortest.Eventually(t, 10*time.Second, string(victim)+" catches up", func() bool {
		st, err := b.status(victim)
		return err == nil && st.Applied >= leadSt.Commit
	})
	t.Logf("%d MiB snapshot installed %v after the restart; %d writes acknowledged meanwhile; leader streams %+v", blobSize>>20, took.Round(time.Millisecond), started, s)
}

// TestBigSnapshotResumesAfterAPartition: the lagging follower is cut off
// in the middle of the 64 MiB transfer (once it has half), then healed;
// the stream resumes where it broke (less sent again than the follower
// had: not started over) and the follower converges.
func TestBigSnapshotResumesAfterAPartition(t *testing.T) {
	b := newBlobGroup(t, sim.Faults{Latency: time.Millisecond}, false)
	lead := b.leader(10 * time.Second)
	victim, commit := b.lagBehindASnapshot(lead)
	if _, err := b.c.Restart(victim); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	actortest.Eventually(t, 30*time.Second, "half the snapshot received", func() bool {
		return raftStreams(b.c.Node(victim)).BytesIn >= int64(blobSize/2)
	})
	var others []actors.NodeName
	for _, n := range b.c.Names() {
		if n != victim {
			others = append(others, n)
		}
	}
	b.c.Partition(others, []actors.NodeName{victim})
	at := raftStreams(b.c.Node(victim)).BytesIn // what a start over would send again
	before := raftStreams(b.c.Node(lead)).RetransmittedChunks
	actortest.Eventually(t, 10*time.Second, "the leader retransmits into the partition", func() bool {
		return raftStreams(b.c.Node(lead)).RetransmittedChunks >= before+3
	})
	b.c.Hub.Heal()
	actortest.Eventually(t, 30*time.Second, fmt.Sprintf("%s installs the %d MiB snapshot", victim, blobSize>>20), func() bool { return b.installed(victim, commit) })
	took := time.Since(start)
	if !b.full(victim) {
		t.Fatalf("%s installed a snapshot without the full blob", victim)
	}
	s, r := raftStreams(b.c.Node(lead)), raftStreams(b.c.Node(victim))
	// Resumed, not started over: what went again (the window in flight at
	// the break and the probes into the partition, some 3 MiB whatever
	// the snapshot's size) is less than what the follower already had.
	if s.Restarted != 0 || s.RetransmittedBytes >= at || r.Received == 0 {
		t.Fatalf("the snapshot stream did not resume where it broke (%d bytes received at the break): leader %+v, follower %+v", at, s, r)
	}
	leadSt, _ := b.status(lead)
	actortest.Eventually(t, 10*time.Second, string(victim)+" catches up", func() bool {
		st, err := b.status(victim)
		return err == nil && st.Applied >= leadSt.Commit
	})
	t.Logf("%d MiB snapshot installed %v after the restart, across a partition: retransmitted %d chunks, %d bytes; leader %+v",
		blobSize>>20, took.Round(time.Millisecond), s.RetransmittedChunks, s.RetransmittedBytes, s)
}

// TestBigSnapshotAfterAFollowerCrashMidTransferOnLoopback: on loopback
// gRPC the follower crashes in the middle of the transfer (its
// connections break, its partial stream is lost) and restarts: it answers
// the leader's next chunk with Reset, the stream starts over from offset
// 0, and the follower installs the snapshot and catches up. (A broken
// connection between two live nodes resumes instead:
// TestBigSnapshotResumesAfterABrokenConnectionOnLoopback.)
func TestBigSnapshotAfterAFollowerCrashMidTransferOnLoopback(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	b := newBlobGroup(t, sim.Faults{}, true)
	lead := b.leader(10 * time.Second)
	victim, commit := b.lagBehindASnapshot(lead)
	if _, err := b.c.Restart(victim); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	actortest.Eventually(t, 30*time.Second, "a quarter of the snapshot received", func() bool {
		n := b.c.Node(victim)
		return n != nil && raftStreams(n).BytesIn >= int64(blobSize/4)
	})
	if err := b.c.Crash(victim); err != nil {
		t.Fatal(err)
	}
	if _, err := b.c.Restart(victim); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 30*time.Second, fmt.Sprintf("%s installs the %d MiB snapshot", victim, blobSize>>20), func() bool { return b.installed(victim, commit) })
	took := time.Since(start)
	if !b.full(victim) {
		t.Fatalf("%s installed a snapshot without the full blob", victim)
	}
	s := raftStreams(b.c.Node(lead))
	if s.Restarted == 0 && s.Failed == 0 {
		t.Fatalf("the leader neither restarted nor failed the stream to the crashed follower: %+v", s)
	}
	t.Logf("%d MiB snapshot installed %v after the first restart, across a crash mid-transfer on loopback; leader %+v", blobSize>>20, took.Round(time.Millisecond), s)
}

// linkProxy forwards the TCP connections it accepts to target, both ways,
// and can break every connection open through it at once, as a network
// fault or a restarted middlebox would: the nodes on either side see
// their gRPC connection reset while both processes live on.
type linkProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newLinkProxy(t *testing.T, target string) *linkProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.breakAll()
		p.wg.Wait()
	})
	return p
}

func (p *linkProxy) addr() string { return p.ln.Addr().String() }

func (p *linkProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns[in], p.conns[out] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *linkProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// breakAll closes every connection open through the proxy and says how
// many there were.
func (p *linkProxy) breakAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	return len(p.conns) / 2
}

// TestBigSnapshotResumesAfterABrokenConnectionOnLoopback: on loopback
// gRPC, with a writer writing through the leader all along, the TCP
// connections into the lagging follower break in the middle of the 64 MiB
// transfer (once it has half) (every node reaches every other through a proxy, and the
// follower's proxy resets all its connections); both processes live on,
// protoactor dials again, and the stream resumes from the offset the
// follower acknowledged, not from zero. Every write is acknowledged.
func TestBigSnapshotResumesAfterABrokenConnectionOnLoopback(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	ports := actortest.FreePorts(t, 3)
	names := []actors.NodeName{"node-1", "node-2", "node-3"}
	proxies := map[actors.NodeName]*linkProxy{}
	for i, n := range names {
		proxies[n] = newLinkProxy(t, fmt.Sprintf("127.0.0.1:%d", ports[i]))
	}
	// Each node has a network of its own, which reaches the others
	// through their proxies (a restart builds a new one on the same port).
	perNode := cluster.NodeConfig(func(i int, c *actors.Config) {
		peers := map[string]string{}
		for j, n := range names {
			if j != i {
				peers[string(n)] = proxies[n].addr()
			}
		}
		// Advertised at its proxy: a node takes messages addressed to
		// the address it advertises only.
		net, err := remote.New(remote.Config{Bind: fmt.Sprintf("127.0.0.1:%d", ports[i]), Advertise: proxies[names[i]].addr(), Peers: peers})
		if err != nil {
			t.Fatal(err)
		}
		c.Network = net
	})
	b := newBlobGroup(t, sim.Faults{}, false, perNode)
	lead := b.leader(10 * time.Second)
	victim, commit := b.lagBehindASnapshot(lead)
	stop := make(chan struct{})
	wait := b.writer(lead, stop)
	if _, err := b.c.Restart(victim); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	actortest.Eventually(t, 30*time.Second, "half the snapshot received", func() bool {
		return raftStreams(b.c.Node(victim)).BytesIn >= int64(blobSize/2)
	})
	broken := proxies[victim].breakAll()
	at := raftStreams(b.c.Node(victim)).BytesIn
	if broken == 0 || at >= int64(blobSize) {
		t.Fatalf("broke %d connections with %d of %d bytes received: the break must come mid-transfer", broken, at, blobSize)
	}
	actortest.Eventually(t, 60*time.Second, fmt.Sprintf("%s installs the %d MiB snapshot", victim, blobSize>>20), func() bool { return b.installed(victim, commit) })
	took := time.Since(start)
	close(stop)
	if !b.full(victim) {
		t.Fatalf("%s installed a snapshot without the full blob", victim)
	}
	started, failed := wait()
	if len(failed) > 0 {
		t.Fatalf("the writer started %d writes during the transfer; %d failed: %v", started, len(failed), errors.Join(failed...))
	}
	s := raftStreams(b.c.Node(lead))
	if s.Restarted != 0 || s.RetransmittedBytes >= at {
		t.Fatalf("the snapshot stream did not resume where it broke (broken at %d bytes received): leader %+v", at, s)
	}
	t.Logf("%d MiB snapshot installed %v after the restart; %d connections broken at %d MiB received; retransmitted %d chunks, %d bytes; %d writes acknowledged meanwhile",
		blobSize>>20, took.Round(time.Millisecond), broken, at>>20, s.RetransmittedChunks, s.RetransmittedBytes, started)
}

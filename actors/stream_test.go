package actors_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
	"github.com/troupe-dev/troupe/transport/sim"
)

// blobs is a protocol that streams values on command and records what it
// receives.
const blobs actors.ProtocolName = "blobs"

type sendBlob struct {
	to     actors.NodeName
	n      uint64
	data   []byte
	result chan error // SendStream's error, else done's
}

type gotBlob struct {
	from actors.NodeName
	n    uint64
	data []byte
}

type blobLog struct {
	mu  sync.Mutex
	got []gotBlob
}

func (l *blobLog) add(b gotBlob) { l.mu.Lock(); l.got = append(l.got, b); l.mu.Unlock() }
func (l *blobLog) all() []gotBlob {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]gotBlob(nil), l.got...)
}

// blobProtocol streams on sendBlob and records streams of *messages.Ping heads;
// a head of N == refuseN is refused by the handler.
func blobProtocol(log *blobLog) actors.Factory {
	return protocol(blobs, func(ctx *actors.Context) error {
		onProbe(ctx)
		actors.OnTell(ctx, func(ctx *actors.Context, s *sendBlob) error {
			err := ctx.SendStream(s.to, &messages.Ping{N: s.n}, s.data, func(_ *actors.Context, err error) error {
				s.result <- err
				return nil
			})
			if err != nil {
				s.result <- err
			}
			return nil
		})
		actors.OnStream(ctx, func(_ *actors.Context, from actors.NodeName, head *messages.Ping, data []byte) error {
			if head.N == refuseN {
				return errors.New("not this one")
			}
			if head.N == panicN {
				panic("boom")
			}
			log.add(gotBlob{from, head.N, data})
			return nil
		})
		return nil
	})
}

// Heads with these N are refused by the handler: with an error, with a
// panic.
const refuseN, panicN = 666, 667

// streamConfig is quick on virtual time: a short RTO and TTL.
func streamConfig(_ int, c *actors.Config) {
	c.Stream = actors.StreamConfig{
		MaxSize: 16 << 20, ChunkSize: 256 << 10, Window: 2 << 20,
		RTO: 50 * time.Millisecond, MaxRTO: 400 * time.Millisecond,
		StallTimeout: 10 * time.Second, IdleTTL: 2 * time.Second,
		MaxPartialPerPeer: 3, MaxBuffered: 32 << 20,
	}
}

func blob(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func streamCluster(t *testing.T, faults sim.Faults) (*cluster.Cluster, *blobLog) {
	t.Helper()
	c := clustertest.NewCluster(t, 2, cluster.Sim(sim.Config{Seed: 7, Faults: faults}), cluster.NodeConfig(streamConfig))
	log := &blobLog{}
	if err := c.Start(blobProtocol(log)); err != nil {
		t.Fatal(err)
	}
	return c, log
}

func send(t *testing.T, c *cluster.Cluster, from, to actors.NodeName, n uint64, data []byte) chan error {
	t.Helper()
	res := make(chan error, 1)
	if err := c.Node(from).Tell(blobs, &sendBlob{to: to, n: n, data: data, result: res}); err != nil {
		t.Fatal(err)
	}
	return res
}

func streamStats(c *cluster.Cluster, n actors.NodeName) actors.StreamStats {
	return c.Node(n).Stats().Protocols[blobs].Streams
}

// TestStreamUnderLossDuplicationReordering: a 6 MiB value crosses a link
// that loses, duplicates and reorders chunks and acks, arrives whole and
// once; an empty value and a refused one end as they should.
func TestStreamUnderLossDuplicationReordering(t *testing.T) {
	actortest.Virtual(t, func(t *testing.T) {
		c, log := streamCluster(t, sim.Faults{Latency: time.Millisecond, Loss: 0.05, Duplicate: 0.05, Reorder: 0.1})
		data := blob(1, 6<<20)
		if err := actortest.Receive(t, send(t, c, "node-1", "node-2", 1, data), wait, "done"); err != nil {
			t.Fatalf("done: %v", err)
		}
		if err := actortest.Receive(t, send(t, c, "node-1", "node-2", 2, nil), wait, "done of the empty value"); err != nil {
			t.Fatalf("done of the empty value: %v", err)
		}
		err := actortest.Receive(t, send(t, c, "node-1", "node-2", refuseN, []byte("x")), wait, "done of the refused value")
		if !errors.Is(err, actors.ErrStreamRefused) || !strings.Contains(err.Error(), "not this one") {
			t.Fatalf("done of a value the handler refuses: %v", err)
		}
		err = actortest.Receive(t, send(t, c, "node-1", "node-2", panicN, []byte("x")), wait, "done of the value whose handler panics")
		if !errors.Is(err, actors.ErrStreamRefused) || !strings.Contains(err.Error(), "panicked: boom") {
			t.Fatalf("done of a value whose handler panics: %v", err)
		}
		if p := c.Node("node-2").Stats().Protocols[blobs]; p.Restarts != 0 || p.Refused != 1 {
			t.Fatalf("a handler's panic on a stream: %d restarts, %d refused; want 0 and 1", p.Restarts, p.Refused)
		}
		got := log.all()
		if len(got) != 2 || got[0].n != 1 || !bytes.Equal(got[0].data, data) || got[0].from != "node-1" || got[1].n != 2 || len(got[1].data) != 0 {
			t.Fatalf("received %d values (want the 6 MiB one, then the empty one, once each)", len(got))
		}
		s, r := streamStats(c, "node-1"), streamStats(c, "node-2")
		if s.Sent != 2 || s.Failed != 2 || r.Received != 2 || r.Refused != 2 || r.Partial != 0 || r.Buffered != 0 {
			t.Fatalf("sender %+v\nreceiver %+v", s, r)
		}
		if s.RetransmittedChunks == 0 {
			t.Fatalf("no chunk retransmitted over a lossy link: %+v", s)
		}
		t.Logf("sender %+v", s)
	})
}

// TestStreamResumesAfterPartition: a partition in the middle of an 8 MiB
// stream, healed before StallTimeout, resumes it from the receiver's
// offset: what is sent again is a few windows, not the value.
func TestStreamResumesAfterPartition(t *testing.T) {
	actortest.Virtual(t, func(t *testing.T) {
		c, log := streamCluster(t, sim.Faults{Latency: 5 * time.Millisecond})
		data := blob(2, 8<<20)
		res := send(t, c, "node-1", "node-2", 1, data)
		actortest.Eventually(t, wait, "3 MiB received", func() bool { return streamStats(c, "node-2").BytesIn >= 3<<20 })
		c.Hub.Partition([]string{"node-1"}, []string{"node-2"})
		actortest.Eventually(t, wait, "a retransmission into the partition", func() bool { return streamStats(c, "node-1").RetransmittedChunks >= 3 })
		c.Hub.Heal()
		if err := actortest.Receive(t, res, wait, "done"); err != nil {
			t.Fatalf("done: %v", err)
		}
		if got := log.all(); len(got) != 1 || !bytes.Equal(got[0].data, data) {
			t.Fatalf("received %d values, want the 8 MiB one once", len(got))
		}
		s := streamStats(c, "node-1")
		// At most the window lost at the break, and a chunk per RTO into
		// the partition.
		if s.Restarted != 0 || s.RetransmittedBytes > 3<<20 {
			t.Fatalf("the stream did not resume where it broke: %+v", s)
		}
		t.Logf("8 MiB across a partition: retransmitted %d chunks, %d bytes", s.RetransmittedChunks, s.RetransmittedBytes)
	})
}

// TestStreamStartsOverWhenTheReceiverDroppedIt: a partition longer than
// the receiver's IdleTTL (but shorter than the sender's StallTimeout)
// expires the partial stream; after it heals the receiver answers Reset and
// the sender starts over from offset 0.
func TestStreamStartsOverWhenTheReceiverDroppedIt(t *testing.T) {
	actortest.Virtual(t, func(t *testing.T) {
		c, log := streamCluster(t, sim.Faults{Latency: 5 * time.Millisecond})
		data := blob(3, 4<<20)
		res := send(t, c, "node-1", "node-2", 1, data)
		actortest.Eventually(t, wait, "1 MiB received", func() bool { return streamStats(c, "node-2").BytesIn >= 1<<20 })
		c.Hub.Partition([]string{"node-1"}, []string{"node-2"})
		actortest.Eventually(t, wait, "the partial stream expired", func() bool { return streamStats(c, "node-2").Expired == 1 })
		if r := streamStats(c, "node-2"); r.Partial != 0 || r.Buffered != 0 {
			t.Fatalf("an expired stream still holds memory: %+v", r)
		}
		c.Hub.Heal()
		if err := actortest.Receive(t, res, wait, "done"); err != nil {
			t.Fatalf("done: %v", err)
		}
		if got := log.all(); len(got) != 1 || !bytes.Equal(got[0].data, data) {
			t.Fatalf("received %d values, want the 4 MiB one once", len(got))
		}
		if s := streamStats(c, "node-1"); s.Restarted != 1 {
			t.Fatalf("want one restart from offset 0: %+v", s)
		}
	})
}

// TestStreamStallsAndSenderChecks: a stream to a node that never answers
// fails with ErrStreamStalled after StallTimeout; an unknown node and a
// value over MaxSize fail at once.
func TestStreamStallsAndSenderChecks(t *testing.T) {
	actortest.Virtual(t, func(t *testing.T) {
		c, _ := streamCluster(t, sim.Faults{})
		c.Hub.Partition([]string{"node-1"}, []string{"node-2"})
		start := time.Now()
		err := actortest.Receive(t, send(t, c, "node-1", "node-2", 1, blob(4, 1<<20)), time.Minute, "done")
		if !errors.Is(err, actors.ErrStreamStalled) || time.Since(start) < 10*time.Second {
			t.Fatalf("a stream into a partition: %v after %v (want ErrStreamStalled after StallTimeout, 10s)", err, time.Since(start))
		}
		if err := actortest.Receive(t, send(t, c, "node-1", "ghost", 1, []byte("x")), wait, "send"); !errors.Is(err, transport.ErrUnknownNode) {
			t.Fatalf("a stream to an unknown node: %v", err)
		}
		if err := actortest.Receive(t, send(t, c, "node-1", "node-2", 1, make([]byte, 16<<20+1)), wait, "send"); !errors.Is(err, actors.ErrStreamTooLarge) {
			t.Fatalf("a value over MaxSize: %v", err)
		}
		if s := streamStats(c, "node-1"); s.Failed != 1 || s.Sent != 0 {
			t.Fatalf("sender %+v", s)
		}
	})
}

// fakeChunk and fakeAck have the fields of the runtime's stream messages,
// so an intruder can forge chunks and read acks.
type fakeChunk struct {
	Session, ID, Total, Offset uint64
	Type                       string
	Head, Data                 []byte
}

type fakeAck struct {
	Session, ID, Offset uint64
	Done, Reset         bool
	Refused             string
	Incarnation         uint64
}

var (
	_ = messages.Register[fakeChunk]("streamtest.FakeChunk")
	_ = messages.Register[fakeAck]("streamtest.FakeAck")
)

// TestStreamForgedChunks: an intruder's garbage is dropped and counted,
// what must be refused is refused with a reason, duplicates hand the value
// over once, the partial streams of one peer are capped, and a peer that
// starts streams and goes silent frees its memory after IdleTTL.
func TestStreamForgedChunks(t *testing.T) {
	actortest.Virtual(t, func(t *testing.T) {
		c, log := streamCluster(t, sim.Faults{})
		if err := c.Start(protocol("other", func(ctx *actors.Context) error { onProbe(ctx); return nil })); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var acks []*fakeAck
		intruder, err := c.Hub.Attach(transport.Attachment{Node: "intruder", Deliver: func(env *messages.Envelope, _ int) {
			if env.Type != actors.StreamAckType {
				return
			}
			st, _ := messages.LookupStruct("streamtest.FakeAck")
			m, err := st.Unmarshal(env.Payload)
			if err != nil {
				t.Errorf("an ack that does not decode: %v", err)
				return
			}
			mu.Lock()
			acks = append(acks, m.(*fakeAck))
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		head, _ := messages.LookupStruct("streamtest.FakeChunk")
		ping := []byte{0x08, 9} // messages.Ping{N: 9}
		forge := func(protocol string, ch fakeChunk) {
			t.Helper()
			b, err := head.Marshal(&ch)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := intruder.Send(&messages.Envelope{From: "intruder", To: "node-1", Protocol: protocol, Type: actors.StreamChunkType, Payload: b}); err != nil {
				t.Fatal(err)
			}
		}
		lastAck := func(id uint64) *fakeAck {
			mu.Lock()
			defer mu.Unlock()
			for i := len(acks) - 1; i >= 0; i-- {
				if acks[i].ID == id {
					return acks[i]
				}
			}
			return nil
		}
		const pingType = "troupe.examples.v1.Ping"
		// Garbage: dropped, counted, unanswered.
		forge("blobs", fakeChunk{Session: 1, ID: 1, Total: 10, Offset: 11})                         // offset past the total
		forge("blobs", fakeChunk{Session: 1, ID: 1, Total: 10, Offset: 5, Data: make([]byte, 6)})   // data past the total
		forge("blobs", fakeChunk{Session: 0, ID: 1, Total: 10, Type: pingType, Head: ping})         // no session
		forge("blobs", fakeChunk{Session: 1, ID: 0, Total: 10, Type: pingType, Head: ping})         // no id
		forge("blobs", fakeChunk{Session: 1, ID: 2, Total: 1 << 40, Type: pingType, Head: ping})    // over MaxSize: refused
		forge("blobs", fakeChunk{Session: 1, ID: 3, Total: 10, Offset: 4, Data: []byte("x")})       // unknown stream: Reset
		forge("other", fakeChunk{Session: 1, ID: 4, Total: 10, Type: pingType, Head: ping})         // a protocol without OnStream
		forge("blobs", fakeChunk{Session: 1, ID: 5, Total: 10, Type: "troupe.examples.v1.Pong"})    // a head type with no handler
		forge("blobs", fakeChunk{Session: 1, ID: 6, Total: 10, Type: pingType, Head: []byte{0x08}}) // a head that does not decode
		forge("blobs", fakeChunk{Session: 1, ID: 7, Total: 10, Type: pingType, Head: ping, Data: []byte("01234")})
		forge("blobs", fakeChunk{Session: 1, ID: 7, Total: 12, Offset: 5, Data: []byte("56789")}) // the total changed
		forge("blobs", fakeChunk{Session: 1, ID: 7, Total: 10, Offset: 0, Data: []byte("01234")}) // duplicates
		forge("blobs", fakeChunk{Session: 1, ID: 7, Total: 10, Offset: 5, Data: []byte("56789")})
		forge("blobs", fakeChunk{Session: 1, ID: 7, Total: 10, Offset: 5, Data: []byte("56789")})
		forge("blobs", fakeChunk{Session: 1, ID: 7, Total: 10, Offset: 0, Data: []byte("01234")})
		recv := func() actors.StreamStats { return c.Node("node-1").Stats().Protocols[blobs].Streams }
		if err := actortest.WaitFor(wait, func() bool {
			r := recv()
			return r.ChunksIn == 14 && r.Bad == 5 && r.Refused == 3 && r.Received == 1 && r.Partial == 0
		}); err != nil {
			t.Fatalf("receiver %+v; want 14 chunks in: 5 bad, 3 refused, 1 received", recv())
		}
		actortest.Eventually(t, wait, "the protocol without OnStream refused the stream", func() bool {
			return c.Node("node-1").Stats().Protocols["other"].Streams.Refused == 1
		})
		actortest.Eventually(t, wait, "the acks", func() bool { return lastAck(7) != nil && lastAck(7).Done })
		for id, want := range map[uint64]string{2: "MaxSize", 4: "no OnStream handler", 5: "no OnStream handler", 6: "does not decode"} {
			if a := lastAck(id); a == nil || !strings.Contains(a.Refused, want) {
				t.Errorf("stream %d: ack %+v, want refused with %q", id, a, want)
			}
		}
		if a := lastAck(3); a == nil || !a.Reset {
			t.Errorf("a chunk of an unknown stream: ack %+v, want Reset", a)
		}
		if got := log.all(); len(got) != 1 || string(got[0].data) != "0123456789" || got[0].from != "intruder" || got[0].n != 9 {
			t.Fatalf("received %+v, want 0123456789 once", got)
		}
		// Many partial streams from one peer: MaxPartialPerPeer (3) kept.
		for id := uint64(10); id < 20; id++ {
			forge("blobs", fakeChunk{Session: 1, ID: id, Total: 1 << 20, Type: pingType, Head: ping, Data: make([]byte, 1000)})
		}
		if err := actortest.WaitFor(wait, func() bool { return recv().ChunksIn == 24 }); err != nil {
			t.Fatalf("receiver %+v; want 24 chunks in", recv())
		}
		if r := recv(); r.Partial != 3 || r.Buffered != 3000 || r.Refused != 3+7 {
			t.Fatalf("after 10 partial streams: %+v; want 3 kept, 7 refused", r)
		}
		if a := lastAck(19); a == nil || !strings.Contains(a.Refused, "MaxPartialPerPeer") {
			t.Fatalf("the stream over the cap: ack %+v", a)
		}
		// The peer goes silent: IdleTTL frees them.
		actortest.Eventually(t, wait, "the partial streams expired", func() bool {
			r := recv()
			return r.Expired == 3 && r.Partial == 0 && r.Buffered == 0
		})
		// A late chunk of a stream handed over long ago starts nothing.
		forge("blobs", fakeChunk{Session: 1, ID: 7, Total: 10, Offset: 5, Data: []byte("56789")})
		actortest.Eventually(t, wait, "the late chunk answered Reset", func() bool { return recv().ChunksIn == 25 })
		if got := log.all(); len(got) != 1 {
			t.Fatalf("a late chunk delivered the value again: %d values", len(got))
		}
	})
}

// TestStreamConfig: a partial StreamConfig takes the defaults of its zero
// fields; out-of-range fields are refused, naming the field.
func TestStreamConfig(t *testing.T) {
	hub, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	n, err := actors.NewNode(actors.Config{Name: "node-1", Network: hub, Stream: actors.StreamConfig{ChunkSize: 64 << 10}})
	if err != nil {
		t.Fatalf("a StreamConfig with one field: %v", err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg  actors.StreamConfig
		want string
	}{
		{actors.StreamConfig{ChunkSize: 2 << 20}, "Stream.ChunkSize"},
		{actors.StreamConfig{ChunkSize: 1 << 20, Window: 1 << 10}, "Stream.Window"},
		{actors.StreamConfig{MaxSize: -1}, "Stream.MaxSize"},
		{actors.StreamConfig{RTO: time.Second, MaxRTO: time.Millisecond}, "Stream.RTO"},
		{actors.StreamConfig{MaxPartialPerPeer: -1}, "Stream.MaxPartialPerPeer"},
		{actors.StreamConfig{MaxSize: 1 << 20, MaxBuffered: 1 << 10}, "Stream.MaxBuffered"},
	} {
		_, err := actors.NewNode(actors.Config{Name: "node-2", Network: hub, Stream: c.cfg})
		if !errors.Is(err, actors.ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want ErrInvalidConfig naming %s", c.cfg, err, c.want)
		}
	}
}

// TestStreamAcksOfTheReceiversIncarnations: the sender follows the
// receiver's incarnation in its acks: an ack of an earlier incarnation
// moves nothing, an ack of a later one (the receiver restarted) starts the
// stream over from what that one holds; forged acks past the total are
// dropped and counted.
func TestStreamAcksOfTheReceiversIncarnations(t *testing.T) {
	actortest.Virtual(t, func(t *testing.T) {
		c, _ := streamCluster(t, sim.Faults{})
		chunks := make(chan *fakeChunk, 64)
		intruder, err := c.Hub.Attach(transport.Attachment{Node: "intruder", Deliver: func(env *messages.Envelope, _ int) {
			if env.Type != actors.StreamChunkType {
				return
			}
			st, _ := messages.LookupStruct("streamtest.FakeChunk")
			m, err := st.Unmarshal(env.Payload)
			if err != nil {
				t.Errorf("a chunk that does not decode: %v", err)
				return
			}
			chunks <- m.(*fakeChunk)
		}})
		if err != nil {
			t.Fatal(err)
		}
		ackType, _ := messages.LookupStruct("streamtest.FakeAck")
		ack := func(a fakeAck) {
			t.Helper()
			b, err := ackType.Marshal(&a)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := intruder.Send(&messages.Envelope{From: "intruder", To: "node-1", Protocol: string(blobs), Type: actors.StreamAckType, Payload: b}); err != nil {
				t.Fatal(err)
			}
		}
		next := func(what string) *fakeChunk { t.Helper(); return actortest.Receive(t, chunks, wait, what) }
		data := blob(5, 1<<20) // 4 chunks, all in the window
		res := send(t, c, "node-1", "intruder", 1, data)
		first := next("chunk 0")
		for i := 1; i < 4; i++ {
			if ch := next("chunk"); ch.Offset != uint64(i)*256<<10 {
				t.Fatalf("chunk %d at offset %d", i, ch.Offset)
			}
		}
		id := fakeAck{Session: first.Session, ID: first.ID}
		a := id
		a.Offset, a.Incarnation = 512<<10, 10
		ack(a)
		a.Offset, a.Incarnation = 768<<10, 9 // an earlier incarnation: ignored
		ack(a)
		a.Offset, a.Incarnation = 2<<20, 10 // past the total: bad
		ack(a)
		a.Offset, a.Done = 100, true // done short of the total: bad
		ack(a)
		actortest.Eventually(t, wait, "two bad acks", func() bool { return streamStats(c, "node-1").Bad == 2 })
		// The receiver restarted holding nothing: the stream starts over.
		ack(fakeAck{Session: first.Session, ID: first.ID, Incarnation: 11})
		if ch := next("chunk 0 again"); ch.Offset != 0 || ch.Total != uint64(len(data)) {
			t.Fatalf("after the receiver's restart the sender sent offset %d, want 0", ch.Offset)
		}
		if s := streamStats(c, "node-1"); s.Restarted != 1 || s.Sent != 0 {
			t.Fatalf("sender %+v, want one restart", s)
		}
		a = id
		a.Offset, a.Done, a.Incarnation = uint64(len(data)), true, 11
		ack(a)
		if err := actortest.Receive(t, res, wait, "done"); err != nil {
			t.Fatalf("done: %v", err)
		}
	})
}

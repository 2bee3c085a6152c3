package membership

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"

	"github.com/troupe-dev/troupe/transport"
)

// bareMembership is node "self", enough of a Membership for its packets to parse and
// deliver (no memberlist: nothing is relayed or sent).
func bareMembership(t testing.TB) (*Membership, *[]delivery) {
	t.Helper()
	m := &Membership{cfg: Config{Name: "self"}, done: make(chan struct{})}
	m.pk = newPackets(m, memberlist.DefaultLANConfig(), Broadcasts{DedupeWindow: 64, Origins: 16})
	var got []delivery
	m.pk.Handle(transport.PacketHandler{Receive: func(ch transport.Channel, b []byte) { got = append(got, delivery{ch, b}) }})
	return m, &got
}

type delivery struct {
	ch transport.Channel
	b  []byte
}

func gossipFrameOf(origin string, nonce, seq uint64, protocol string, body []byte) []byte {
	b := []byte{kindGossip, byte(len(origin))}
	b = append(b, origin...)
	b = binary.BigEndian.AppendUint64(b, nonce)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, byte(len(protocol)))
	b = append(b, protocol...)
	return append(b, body...)
}

// TestDedupeWindow: a sequence number is delivered once per origin and
// nonce; one below the window is taken as seen; a new nonce starts afresh
// and the previous one's window is kept; the least recent origin is
// evicted beyond the cap.
func TestDedupeWindow(t *testing.T) {
	d := newDedupe(64, 16)
	steps := []struct {
		origin     string
		nonce, seq uint64
		want       bool
	}{
		{"a", 1, 1, true}, {"a", 1, 1, false}, {"a", 1, 3, true}, {"a", 1, 2, true}, {"a", 1, 2, false},
		{"a", 1, 66, true},   // slides the window: 2 is now below it
		{"a", 1, 2, false},   // below the window: taken as seen
		{"a", 1, 3, false},   // ditto
		{"a", 1, 10, true},   // inside the window, not seen
		{"a", 1, 1000, true}, // a jump beyond the window clears it
		{"a", 1, 999, true},
		{"a", 1, 999, false},
		{"a", 2, 1, true},     // a restart: new nonce, fresh window
		{"a", 2, 1, false},    //
		{"a", 1, 998, true},   // the previous run's window is kept: 998 unseen
		{"a", 1, 1000, false}, // ... and 1000 seen
		{"b", 1, 1, true},     // origins are independent
		{"a", 3, 1, true},     // a third nonce: the first is forgotten
		{"a", 1, 1000, true},  // ... and looks new again (documented limit)
	}
	for i, s := range steps {
		if got := d.first(s.origin, s.nonce, s.seq); got != s.want {
			t.Fatalf("step %d: first(%s, %d, %d) = %v; want %v", i, s.origin, s.nonce, s.seq, got, s.want)
		}
	}
	for i := range 20 { // more origins than the cap: the least recent go
		d.first(strings.Repeat("o", i+1), 1, 1)
	}
	if len(d.origins) != 16 || d.lru.Len() != 16 {
		t.Fatalf("%d origins kept (%d in the LRU list); the cap is 16", len(d.origins), d.lru.Len())
	}
	if !d.first("b", 1, 1) {
		t.Error("origin b was evicted, yet its broadcast 1 was taken as seen")
	}
}

// TestDedupeWindowSlides: numbers the window slides over (a word of bits
// at a time, or bit by bit) are forgotten; the ones still in it are not.
func TestDedupeWindowSlides(t *testing.T) {
	d := newDedupe(256, 16)
	for s := uint64(1); s <= 200; s++ {
		if !d.first("a", 1, s) {
			t.Fatalf("%d taken as seen", s)
		}
	}
	if !d.first("a", 1, 330) { // slides over 201..329: slots of 1..73 reused
		t.Fatal("330 taken as seen")
	}
	for s, want := range map[uint64]bool{257: true, 300: true, 319: true, 320: true, 329: true, 150: false, 200: false, 75: false, 74: false, 330: false} {
		if got := d.first("a", 1, s); got != want {
			t.Errorf("after 1..200 and 330, first(%d) = %v; want %v", s, got, want)
		}
	}
}

// TestNotifyMsgCopiesAndDeduplicates: what NotifyMsg delivers is a copy (the
// caller's buffer may be reused), once per broadcast; this node's own
// origin is never delivered.
func TestNotifyMsgCopiesAndDeduplicates(t *testing.T) {
	m, got := bareMembership(t)
	buf := gossipFrameOf("other", 7, 1, "p", []byte("body"))
	(*delegate)(m).NotifyMsg(buf)
	for i := range buf {
		buf[i] = 0
	}
	(*delegate)(m).NotifyMsg(gossipFrameOf("other", 7, 1, "p", []byte("body")))
	(*delegate)(m).NotifyMsg(gossipFrameOf("self", 9, 1, "p", []byte("mine")))
	dg := append([]byte{kindDatagram}, "dgram"...)
	(*delegate)(m).NotifyMsg(dg)
	dg[1] = 'X'
	if len(*got) != 2 || (*got)[0].ch != transport.Gossip || string((*got)[0].b) != "body" ||
		(*got)[1].ch != transport.Datagram || string((*got)[1].b) != "dgram" {
		t.Fatalf("delivered %v; want the broadcast once and the datagram, intact", *got)
	}
	if s := m.pk.stats(); s.Duplicates != 2 || s.Delivered != 1 || s.DatagramsReceived != 1 {
		t.Errorf("stats %+v; want 2 duplicates (a copy, an own frame), 1 delivered, 1 datagram", s)
	}
}

// TestLimitsFollowTheConfig: the datagram limit keeps the whole packet in
// memberlist's UDP buffer with a label and encryption; the largest
// broadcast frame leaves room in a gossip packet.
func TestLimitsFollowTheConfig(t *testing.T) {
	c := memberlist.DefaultLANConfig()
	if got := datagramLimitOf(c); got != 1400-1-5-1 {
		t.Errorf("datagram limit %d; want %d", got, 1400-1-5-1)
	}
	kr, err := memberlist.NewKeyring(nil, bytes.Repeat([]byte{1}, 16))
	if err != nil {
		t.Fatal(err)
	}
	c.Keyring, c.Label = kr, "cluster-a"
	limit := datagramLimitOf(c)
	if packet := datagramHeader + limit + userMsgOverhead + crcOverhead + 2 + len(c.Label) + maxEncryptOverhead; packet != c.UDPBufferSize {
		t.Errorf("the largest datagram makes a %d-byte packet; want %d", packet, c.UDPBufferSize)
	}
	gossipRoom := c.UDPBufferSize - 2 /* compound header */ - maxEncryptOverhead
	if frame := gossipHeader + BroadcastLimit + 3; gossipRoom-frame < 300 {
		t.Errorf("the largest broadcast frame (%d bytes) leaves %d bytes of a gossip packet; want 300 or more", frame, gossipRoom-frame)
	}
}

// FuzzNotifyMsg: whatever the bytes, NotifyMsg neither panics nor delivers
// anything but the body of a well-formed frame, copied; each packet is
// delivered, counted as a duplicate, or refused.
func FuzzNotifyMsg(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{kindDatagram})
	f.Add(append([]byte{kindDatagram, 1, 'p'}, "body"...))
	f.Add([]byte{kindDatagram, 200, 'p'})
	f.Add(gossipFrameOf("other", 1, 1, "p", []byte("x")))
	f.Add(gossipFrameOf("self", 1, 1, "p", []byte("x")))
	f.Add(gossipFrameOf("bad/name", 1, 1, "p", nil))
	f.Add(gossipFrameOf("other", 1, 1, "p", make([]byte, BroadcastLimit+1)))
	f.Add(gossipFrameOf("other", 1, 1, "p", nil)[:10])
	f.Add([]byte{0xff, 0xff, 0xff})
	m, got := bareMembership(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		*got = (*got)[:0]
		before := m.pk.stats()
		in := bytes.Clone(b)
		(*delegate)(m).NotifyMsg(in)
		for i := range in {
			in[i] ^= 0xff
		}
		after := m.pk.stats()
		var refused int64
		for k, v := range after.Refused {
			refused += v - before.Refused[k]
		}
		outcomes := int64(len(*got)) + refused + after.Duplicates - before.Duplicates
		if outcomes != 1 {
			t.Fatalf("%q: %d deliveries, %d refusals, %d duplicates; want exactly one outcome", b, len(*got), refused, after.Duplicates-before.Duplicates)
		}
		if len(*got) == 1 && !bytes.HasSuffix(b, (*got)[0].b) {
			t.Fatalf("%q: delivered %q, not the frame's body", b, (*got)[0].b)
		}
	})
}

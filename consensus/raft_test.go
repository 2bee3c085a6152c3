package consensus_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/mutex"
	"github.com/troupe-dev/troupe/transport/sim"
)

func TestKVOperationsOnAnyNode(t *testing.T) { actortest.Virtual(t, testKVOperationsOnAnyNode) }

func testKVOperationsOnAnyNode(t *testing.T) {
	g := newGroup(t, 3, 1, sim.Faults{}, nil)
	lead := g.leader(5 * time.Second)
	var follower actors.NodeName
	for _, n := range g.c.Names() {
		if n != lead {
			follower = n
			break
		}
	}
	for _, node := range []actors.NodeName{lead, follower} {
		kc := g.kv(node)
		ctx := ctxT(t, 5*time.Second)
		key := "k-" + string(node)
		if _, found, err := kc.Get(ctx, key); err != nil || found {
			t.Fatalf("%s: get of a new key: found=%v err=%v", node, found, err)
		}
		if _, err := kc.Put(ctx, key, []byte("v1")); err != nil {
			t.Fatalf("%s: put: %v", node, err)
		}
		if v, found, err := kc.Get(ctx, key); err != nil || !found || string(v) != "v1" {
			t.Fatalf("%s: get after put = %q %v %v, want v1", node, v, found, err)
		}
		swapped, cur, _, err := kc.CAS(ctx, key, []byte("nope"), []byte("v2"))
		if err != nil || swapped || string(cur) != "v1" {
			t.Fatalf("%s: CAS with a wrong prev: swapped=%v current=%q err=%v", node, swapped, cur, err)
		}
		if swapped, _, _, err := kc.CAS(ctx, key, []byte("v1"), []byte("v2")); err != nil || !swapped {
			t.Fatalf("%s: CAS with the right prev: swapped=%v err=%v", node, swapped, err)
		}
		if swapped, _, found, err := kc.CAS(ctx, "absent-"+string(node), nil, []byte("x")); err != nil || swapped || found {
			t.Fatalf("%s: CAS on an absent key: swapped=%v found=%v err=%v", node, swapped, found, err)
		}
		if existed, err := kc.Delete(ctx, key); err != nil || !existed {
			t.Fatalf("%s: delete: existed=%v err=%v", node, existed, err)
		}
		if _, found, err := kc.Get(ctx, key); err != nil || found {
			t.Fatalf("%s: get after delete: found=%v err=%v", node, found, err)
		}
	}
	// The third node has applied the same writes.
	for _, n := range g.c.Names() {
		st, err := g.status(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Voters) != 3 {
			t.Errorf("%s: voters %v, want 3", n, st.Voters)
		}
		// The leader alone reports its followers' progress.
		if n == lead && len(st.Followers) != 2 || n != lead && len(st.Followers) != 0 {
			t.Errorf("%s (leader %s): followers %+v", n, lead, st.Followers)
		}
	}
}

func TestBrowseListsKeysAndLocks(t *testing.T) {
	g := newGroup(t, 3, 1, sim.Faults{}, nil)
	lead := g.leader(5 * time.Second)
	kc := g.kv(lead)
	ctx := ctxT(t, 5*time.Second)
	for _, k := range []string{"app/b", "app/a", "app/c", "other"} {
		if _, err := kc.Put(ctx, k, []byte("value of "+k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kc.Put(ctx, "app/bin", []byte{0xff, 0xfe}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Put(ctx, "app/long", []byte(strings.Repeat("é", 150))); err != nil {
		t.Fatal(err)
	}
	leases, err := mutex.NewLeases(g.Node(lead))
	if err != nil {
		t.Fatal(err)
	}
	lk, err := leases.Acquire(ctx, "app/lock", time.Minute, "worker-7")
	if err != nil {
		t.Fatal(err)
	}
	browse := func(r kv.BrowseRequest) kv.Browse {
		t.Helper()
		b, err := actors.Call(ctx, g.c.Node(lead), consensus.Name, r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := browse(kv.BrowseRequest{Prefix: "app/", Limit: 3})
	var names []string
	for _, k := range b.Keys {
		names = append(names, k.Key)
	}
	if strings.Join(names, " ") != "app/a app/b app/bin" || !b.More || b.Applied == 0 {
		t.Fatalf("first page %v more=%v applied=%d", names, b.More, b.Applied)
	}
	if b.Keys[0].Value != "value of app/a" || b.Keys[0].Size != 14 || !b.Keys[2].Binary || b.Keys[2].Value != "" {
		t.Fatalf("key infos %+v", b.Keys)
	}
	locks, err := leases.Locks(ctx, "app/", 0)
	if err != nil || len(locks) != 1 || locks[0].Owner != "worker-7" || locks[0].Token != lk.Token || locks[0].Name != "app/lock" {
		t.Fatalf("locks %+v (%v), want app/lock held by worker-7 with token %d", locks, err, lk.Token)
	}
	b = browse(kv.BrowseRequest{Prefix: "app/", After: "app/bin"})
	if len(b.Keys) != 2 || b.Keys[0].Key != "app/c" || b.More {
		t.Fatalf("second page %+v more=%v", b.Keys, b.More)
	}
	if l := b.Keys[1]; l.Key != "app/long" || !l.Cut || !utf8.ValidString(l.Value) || len(l.Value) > 200 || l.Size != 300 {
		t.Fatalf("a long value: %+v", l)
	}
	for _, bad := range []kv.BrowseRequest{{Limit: -1}, {Limit: kv.MaxBrowseLimit + 1}, {Prefix: strings.Repeat("x", kv.MaxBrowsePrefix+1)}} {
		if _, err := actors.Call(ctx, g.c.Node(lead), consensus.Name, bad); !errors.Is(err, consensus.ErrBadRequest) {
			t.Errorf("browse limit %d, prefix of %d bytes: %v, want ErrBadRequest", bad.Limit, len(bad.Prefix), err)
		}
	}
}

func TestBadInputIsRefused(t *testing.T) { actortest.Virtual(t, testBadInputIsRefused) }

func testBadInputIsRefused(t *testing.T) {
	g := newGroup(t, 1, 2, sim.Faults{}, nil, kv.Config{MaxValueSize: 16, MaxKeySize: 8})
	g.leader(5 * time.Second)
	kc := g.kv("node-1")
	ctx := ctxT(t, 5*time.Second)
	cases := []struct {
		name string
		req  kv.Request
		want error
	}{
		{"empty key", kv.Request{Op: kv.OpPut, Key: ""}, kv.ErrInvalidKey},
		{"long key", kv.Request{Op: kv.OpPut, Key: "123456789"}, kv.ErrInvalidKey},
		{"control character", kv.Request{Op: kv.OpGet, Key: "a\nb"}, kv.ErrInvalidKey},
		{"not UTF-8", kv.Request{Op: kv.OpGet, Key: "a\xffb"}, kv.ErrInvalidKey},
		{"large value", kv.Request{Op: kv.OpPut, Key: "k", Value: make([]byte, 17)}, kv.ErrValueTooLarge},
		{"unknown op", kv.Request{Op: 99, Key: "k"}, consensus.ErrBadRequest},
	}
	for _, c := range cases {
		_, err := kc.Do(ctx, c.req)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := kc.Put(ctx, "k", make([]byte, 16)); err != nil {
		t.Errorf("a value of exactly the limit: %v", err)
	}
}

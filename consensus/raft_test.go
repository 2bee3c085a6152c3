package consensus_test

import (
	"errors"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/consensus"
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
		kv := g.kv(node)
		ctx := ctxT(t, 5*time.Second)
		key := "k-" + string(node)
		if _, found, err := kv.Get(ctx, key); err != nil || found {
			t.Fatalf("%s: get of a new key: found=%v err=%v", node, found, err)
		}
		if _, err := kv.Put(ctx, key, []byte("v1")); err != nil {
			t.Fatalf("%s: put: %v", node, err)
		}
		if v, found, err := kv.Get(ctx, key); err != nil || !found || string(v) != "v1" {
			t.Fatalf("%s: get after put = %q %v %v, want v1", node, v, found, err)
		}
		swapped, cur, _, err := kv.CAS(ctx, key, []byte("nope"), []byte("v2"))
		if err != nil || swapped || string(cur) != "v1" {
			t.Fatalf("%s: CAS with a wrong prev: swapped=%v current=%q err=%v", node, swapped, cur, err)
		}
		if swapped, _, _, err := kv.CAS(ctx, key, []byte("v1"), []byte("v2")); err != nil || !swapped {
			t.Fatalf("%s: CAS with the right prev: swapped=%v err=%v", node, swapped, err)
		}
		if swapped, _, found, err := kv.CAS(ctx, "absent-"+string(node), nil, []byte("x")); err != nil || swapped || found {
			t.Fatalf("%s: CAS on an absent key: swapped=%v found=%v err=%v", node, swapped, found, err)
		}
		if existed, err := kv.Delete(ctx, key); err != nil || !existed {
			t.Fatalf("%s: delete: existed=%v err=%v", node, existed, err)
		}
		if _, found, err := kv.Get(ctx, key); err != nil || found {
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
	}
}

func TestBadInputIsRefused(t *testing.T) { actortest.Virtual(t, testBadInputIsRefused) }

func testBadInputIsRefused(t *testing.T) {
	g := newGroup(t, 1, 2, sim.Faults{}, func(c *consensus.Config) { c.MaxValueSize = 16; c.MaxKeySize = 8 })
	g.leader(5 * time.Second)
	kv := g.kv("node-1")
	ctx := ctxT(t, 5*time.Second)
	cases := []struct {
		name string
		req  consensus.Request
		want error
	}{
		{"empty key", consensus.Request{Op: consensus.OpPut, Key: ""}, consensus.ErrInvalidKey},
		{"long key", consensus.Request{Op: consensus.OpPut, Key: "123456789"}, consensus.ErrInvalidKey},
		{"control character", consensus.Request{Op: consensus.OpGet, Key: "a\nb"}, consensus.ErrInvalidKey},
		{"not UTF-8", consensus.Request{Op: consensus.OpGet, Key: "a\xffb"}, consensus.ErrInvalidKey},
		{"large value", consensus.Request{Op: consensus.OpPut, Key: "k", Value: make([]byte, 17)}, consensus.ErrValueTooLarge},
		{"unknown op", consensus.Request{Op: 99, Key: "k"}, consensus.ErrBadRequest},
	}
	for _, c := range cases {
		_, err := kv.Do(ctx, c.req)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := kv.Put(ctx, "k", make([]byte, 16)); err != nil {
		t.Errorf("a value of exactly the limit: %v", err)
	}
}

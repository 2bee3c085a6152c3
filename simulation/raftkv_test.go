package simulation

import (
	"math"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/kv"
)

// A write still in flight when the run ends may have been applied, and read
// by another client: the checker must count it as unknown. Before, it was
// left out of the history, and the read was of a value nobody wrote.
func TestRaftKVCheckerCountsWritesInFlightAtTheEnd(t *testing.T) {
	put := &kvCall{client: 0, in: consensustest.Input{Op: kv.OpPut, Key: "k1", Value: "c0-2"}, call: 10}
	get := &kvCall{client: 1, in: consensustest.Input{Op: kv.OpGet, Key: "k1"}, call: 30}
	read := porcupine.Operation{ClientId: 1, Input: get.in, Call: 20, Return: 25,
		Output: consensustest.Output{OK: true, Found: true, Value: "c0-2"}}

	c := &kvClients{history: []porcupine.Operation{read}, calls: []*kvCall{put, get}}
	got := c.final()
	if len(got) != 2 {
		t.Fatalf("final history has %d operations, want the read and the put in flight (the get in flight has no effect): %+v", len(got), got)
	}
	if in := got[1].Input.(consensustest.Input); !in.Unknown || in.Value != "c0-2" || got[1].Return != math.MaxInt64 || got[1].Call != 10 {
		t.Fatalf("the put in flight is %+v, want unknown, called at 10, returning at infinity", got[1])
	}
	if !porcupine.CheckOperations(consensustest.Model, got) {
		t.Fatal("a read of a value whose write is still in flight is linearizable, the checker says not")
	}
	if porcupine.CheckOperations(consensustest.Model, c.history) {
		t.Fatal("without the write in flight the read is of a value nobody wrote, yet the history checks")
	}

	// Not too lenient: a write called after the read returned cannot
	// explain it.
	put.call = 40
	if porcupine.CheckOperations(consensustest.Model, c.final()) {
		t.Fatal("a read returned a value before its write was called, and the history checks")
	}

	// A write that returned is not counted twice.
	put.done = true
	if got := c.final(); len(got) != 1 {
		t.Fatalf("final history has %d operations, want only the read", len(got))
	}
}

// Seeds of raft-kv's crash-storm profile (6 s runs) that the checker failed
// as not linearizable: each has a write whose node crashed before it
// answered, applied and read, and its client's timeout (2.5 s) still
// running when the run ended (docs/simulation.md).
func TestRaftKVCrashStormWritesInFlight(t *testing.T) {
	sc := RaftKV(RaftKVConfig{Duration: 6 * time.Second, Profile: "crash-storm"})
	for _, seed := range []uint64{4, 5, 6, 16, 21, 92, 115, 129, 140} {
		if r := Run(sc, seed, Options{}); r.Err != nil {
			t.Errorf("seed %d: %v (replay: go run ./cmd/sim raft-kv --profile crash-storm --duration 6s --seed %d --trace)", seed, r.Err, seed)
		}
	}
}

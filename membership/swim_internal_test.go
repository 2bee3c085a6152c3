package membership

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestMemberlistTableLayoutIsChecked: inspect finds memberlist's member
// table in this memberlist, and sameLayout refuses a layout that differs
// from swimState, naming the field.
func TestMemberlistTableLayoutIsChecked(t *testing.T) {
	c := memberlist.DefaultLocalConfig()
	c.Name, c.BindAddr, c.BindPort, c.LogOutput = "node-1", "127.0.0.1", 0, discard{}
	ml, err := memberlist.Create(c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ml.Shutdown() }()
	table, err := inspect(ml)
	if err != nil {
		t.Fatalf("inspect refuses memberlist %T: %v", ml, err)
	}
	table.lock.RLock()
	nodes := *table.nodes
	if len(nodes) != 1 || nodes[0].Name != "node-1" || nodes[0].State != memberlist.StateAlive {
		t.Errorf("memberlist's table read through swimState: %+v; want node-1 alive", nodes)
	}
	table.lock.RUnlock()

	type shifted struct {
		memberlist.Node
		State       memberlist.NodeStateType
		Incarnation uint32
		StateChange time.Time
	}
	err = sameLayout(reflect.TypeFor[shifted](), reflect.TypeFor[swimState]())
	if err == nil || !strings.Contains(err.Error(), "field 1 is State") {
		t.Errorf("sameLayout of a struct with swapped fields: %v; want an error naming field 1", err)
	}
	if err := sameLayout(reflect.TypeFor[int](), reflect.TypeFor[swimState]()); err == nil {
		t.Error("sameLayout accepts an int for swimState")
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestLocalTimingScalesWithNodesPerCPU: up to 8 nodes per CPU the local
// preset is its fastest; beyond, every timeout grows with the load and
// none shrinks.
func TestLocalTimingScalesWithNodesPerCPU(t *testing.T) {
	base := LocalTiming(1, 2.0)
	if base.ProbeInterval != 200*time.Millisecond || base.ProbeTimeout != 100*time.Millisecond || base.SuspicionMult != 3 {
		t.Errorf("local preset for 1 node: %v; want a 200ms probe interval, 100ms timeout, suspicion mult 3", base)
	}
	if got := LocalTiming(16, 2); got != base {
		t.Errorf("local preset for 16 nodes on 2 CPUs: %v; want the base %v", got, base)
	}
	prev := base
	for _, n := range []int{25, 50, 100, 200, 1000} {
		got := LocalTiming(n, 2)
		if got.ProbeInterval < prev.ProbeInterval || got.ProbeTimeout < prev.ProbeTimeout || got.SuspicionMult < prev.SuspicionMult ||
			got.GossipInterval < prev.GossipInterval || got.PushPullInterval < prev.PushPullInterval {
			t.Errorf("local preset for %d nodes (%v) is faster than for fewer (%v)", n, got, prev)
		}
		if got.ProbeTimeout >= got.ProbeInterval {
			t.Errorf("local preset for %d nodes: probe timeout %v not below the interval %v", n, got.ProbeTimeout, got.ProbeInterval)
		}
		if err := got.validate(); err != nil {
			t.Errorf("local preset for %d nodes does not validate: %v", n, err)
		}
		prev = got
	}
	if got := LocalTiming(200, 2); got.ProbeInterval <= base.ProbeInterval {
		t.Errorf("local preset for 200 nodes on 2 CPUs probes every %v, as fast as for 1", got.ProbeInterval)
	}
	if got, want := LocalTiming(200, 8), LocalTiming(50, 2); got != want {
		t.Errorf("200 nodes on 8 CPUs: %v; want the same as 50 on 2: %v", got, want)
	}
	if err := (&Config{Name: "a", Colocated: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "Colocated is -1; it must be 0..") {
		t.Errorf("Validate of Colocated -1: %v", err)
	}
}

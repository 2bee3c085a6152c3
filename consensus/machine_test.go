package consensus_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/transport/sim"
)

// counter is the smallest machine: Add is a command, Count a lookup.
type counter struct{ n int64 }

type add struct {
	actors.Returns[int64]
	By int64
}

type count struct{ actors.Returns[int64] }

// wrong asks for a string, but Apply answers an int64: a machine's bug.
type wrong struct{ actors.Returns[string] }

func (c *counter) Register(r *consensus.Router) {
	consensus.HandleCommand(r, func(a add) ([]byte, error) {
		if a.By == 0 {
			return nil, consensus.ErrBadRequest
		}
		return []byte{byte(a.By)}, nil
	})
	consensus.HandleCommand(r, func(wrong) ([]byte, error) { return []byte{1}, nil })
	consensus.HandleLookup(r, nil, func(count, uint64) (int64, error) { return c.n, nil })
}

func (c *counter) Apply(cmd consensus.Command) (any, error) {
	c.n += int64(cmd.Data[0])
	return c.n, nil
}
func (c *counter) Snapshot() ([]byte, error) { return []byte{byte(c.n)}, nil }
func (c *counter) Restore(b []byte) error {
	c.n = 0
	if len(b) == 1 {
		c.n = int64(b[0])
	}
	return nil
}

func counterMachine(name string) consensus.Machine {
	return consensus.Machine{Name: name, New: func(consensus.Env) consensus.StateMachine { return &counter{} }}
}

func TestAUserMachineBesideTheStore(t *testing.T) {
	g := consensustest.Start(t, consensustest.Options{Nodes: 3, Seed: 21,
		Machines: []consensus.Machine{kv.DefaultMachine(), counterMachine("counter")}})
	g.Leader(5 * time.Second)
	ctx := ctxT(t, 10*time.Second)
	for i, name := range g.Cluster.Names() {
		n, err := consensus.Call(ctx, g.Node(name), add{By: int64(i + 1)}, func() string { return "add" })
		if err != nil || n < int64(i+1) {
			t.Fatalf("add on %s: %d, %v", name, n, err)
		}
	}
	if n, err := consensus.Call(ctx, g.Node("node-3"), count{}, func() string { return "count" }); err != nil || n != 6 {
		t.Fatalf("count: %d, %v; want 6", n, err)
	}
	if _, err := consensus.Call(ctx, g.Node("node-1"), add{}, func() string { return "add 0" }); !errors.Is(err, consensus.ErrBadRequest) {
		t.Fatalf("add 0: %v; want the encode's ErrBadRequest", err)
	}
	_, err := consensus.Call(ctx, g.Node("node-1"), wrong{}, func() string { return "wrong" })
	if err == nil || !strings.Contains(err.Error(), `machine "counter"`) || !strings.Contains(err.Error(), "int64") {
		t.Fatalf("a result of the wrong type: %v; want an error naming the machine and the type", err)
	}
	st, err := g.Status("node-2")
	if err != nil || st.Keys != 0 {
		t.Fatalf("status %+v, %v: keys counts the store's only", st, err)
	}
}

func TestMachinesAreValidated(t *testing.T) {
	base := consensustest.Config(t.TempDir(), []actors.NodeName{"node-1"})
	for _, c := range []struct {
		machines []consensus.Machine
		want     string
	}{
		{[]consensus.Machine{counterMachine("")}, "machine name"},
		{[]consensus.Machine{counterMachine("Counter")}, "'C'"},
		{[]consensus.Machine{counterMachine(strings.Repeat("c", consensus.MaxMachineName+1))}, "1 to 64 bytes"},
		{[]consensus.Machine{counterMachine("c"), counterMachine("c")}, `"c" is given twice`},
		{[]consensus.Machine{{Name: "c"}}, "no New"},
	} {
		cfg := base
		cfg.Machines = c.machines
		if _, err := consensus.New(cfg); !errors.Is(err, consensus.ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("machines %v: %v; want ErrInvalidConfig saying %q", len(c.machines), err, c.want)
		}
	}
	// Two machines serving one request type: the protocol does not start.
	cfg := base
	cfg.Machines = []consensus.Machine{counterMachine("one"), counterMachine("two")}
	f, err := consensus.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := clustertest.NewCluster(t, 1, cluster.Sim(sim.Config{Seed: 1}))
	err = c.Node("node-1").Start(f)
	if !errors.Is(err, consensus.ErrInvalidConfig) || !strings.Contains(err.Error(), `"one" and "two"`) {
		t.Fatalf("start with two machines serving one request type: %v", err)
	}
}

// A request no hosted machine serves fails at once, naming its type.
func TestARequestNoMachineServesIsRefused(t *testing.T) {
	g := consensustest.Start(t, consensustest.Options{Nodes: 1, Machines: []consensus.Machine{counterMachine("counter")}})
	g.Leader(5 * time.Second)
	kc, err := kv.NewClient(g.Node("node-1"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = kc.Put(ctxT(t, 5*time.Second), "k", []byte("v"))
	if !errors.Is(err, actors.ErrNoHandler) || !strings.Contains(err.Error(), "kv.Request") || !strings.Contains(err.Error(), "Config.Machines") {
		t.Fatalf("a put to a group without the store: %v", err)
	}
}

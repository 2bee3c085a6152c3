package broadcast_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/examples/broadcast"
	"github.com/troupe-dev/troupe/transport/sim"
)

// deliveries records every DeliverReply of every node.
type deliveries struct {
	mu  sync.Mutex
	got map[actors.NodeName]map[string]int // node → "origin/id" → times delivered
}

func watch(t *testing.T, c *cluster.Cluster) *deliveries {
	d := &deliveries{got: map[actors.NodeName]map[string]int{}}
	for _, n := range c.Nodes() {
		d.got[n.Name()] = map[string]int{}
		cancel, err := actors.Observe(n, func(r *broadcast.DeliverReply) {
			d.mu.Lock()
			d.got[r.Node][fmt.Sprintf("%s/%d", r.Origin, r.ID)]++
			d.mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cancel)
	}
	return d
}

func (d *deliveries) count(node actors.NodeName) (distinct, total int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range d.got[node] {
		distinct++
		total += k
	}
	return
}

func (d *deliveries) has(node, origin actors.NodeName, id uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.got[node][fmt.Sprintf("%s/%d", origin, id)] > 0
}

func startBroadcast(t *testing.T, c *cluster.Cluster) {
	cfg := broadcast.DefaultConfig()
	cfg.Neighbours = c.Names()
	cfg.GCInterval = 50 * time.Millisecond
	if err := c.Start(broadcast.New(cfg)); err != nil {
		t.Fatal(err)
	}
}

func bcast(t *testing.T, n *actors.Node, payload string) uint64 {
	t.Helper()
	id, err := actors.Call(context.Background(), n, broadcast.Name, &broadcast.BroadcastRequest{Payload: []byte(payload)})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func fastRetransmit(_ int, cfg *actors.Config) {
	cfg.Reliable = actors.ReliableConfig{RTO: 10 * time.Millisecond, MaxRTO: 100 * time.Millisecond, MaxInFlight: 4096, RecvWindow: 4096}
}

func TestEveryNodeDeliversEveryBroadcastOnceUnderFaults(t *testing.T) {
	actortest.Virtual(t, testEveryNodeDeliversEveryBroadcastOnceUnderFaults)
}

func testEveryNodeDeliversEveryBroadcastOnceUnderFaults(t *testing.T) {
	c := clustertest.NewCluster(t, 5, cluster.Sim(sim.Config{Seed: 3, Faults: sim.Faults{
		Loss: 0.3, Duplicate: 0.1, Reorder: 0.1, Latency: time.Millisecond, Jitter: time.Millisecond,
	}}), cluster.NodeConfig(fastRetransmit))
	d := watch(t, c)
	startBroadcast(t, c)

	// A partition: node-1 and node-2 on one side, the rest on the other.
	c.Hub.Partition([]string{"node-1", "node-2"}, []string{"node-3", "node-4", "node-5"})
	var fromOne, fromFour []uint64
	for i := range 10 {
		fromOne = append(fromOne, bcast(t, c.Node("node-1"), fmt.Sprint("a", i)))
		fromFour = append(fromFour, bcast(t, c.Node("node-4"), fmt.Sprint("b", i)))
	}
	actortest.Eventually(t, 20*time.Second, "each side delivers its own broadcasts", func() bool {
		for _, id := range fromOne {
			if !d.has("node-2", "node-1", id) {
				return false
			}
		}
		for _, id := range fromFour {
			if !d.has("node-3", "node-4", id) || !d.has("node-5", "node-4", id) {
				return false
			}
		}
		return true
	})
	for _, id := range fromOne {
		if d.has("node-3", "node-1", id) {
			t.Fatalf("node-3 delivered a broadcast of node-1 across the partition")
		}
	}

	c.Hub.Heal()
	actortest.Eventually(t, 30*time.Second, "every node delivers all 20 broadcasts after healing", func() bool {
		for _, n := range c.Names() {
			if distinct, _ := d.count(n); distinct != 20 {
				return false
			}
		}
		return true
	})
	for _, n := range c.Nodes() {
		_, _ = actors.Call(context.Background(), n, broadcast.Name, &broadcast.BroadcastRequest{}) // flushes the mailbox
	}
	actortest.Eventually(t, 30*time.Second, "the flush broadcasts arrive", func() bool {
		for _, n := range c.Names() {
			if distinct, _ := d.count(n); distinct != 25 {
				return false
			}
		}
		return true
	})
	for _, n := range c.Names() {
		if distinct, total := d.count(n); total != distinct {
			t.Fatalf("%s delivered %d times %d distinct broadcasts: a broadcast was delivered twice", n, total, distinct)
		}
	}
	tot := c.Hub.Stats().Total(sim.Protocol(string(broadcast.Name)))
	if tot.Lost == 0 || tot.Duplicated == 0 || tot.Blocked == 0 {
		t.Fatalf("faults did not happen: %+v", tot)
	}
	t.Logf("broadcast traffic: %+v", tot)
}

func TestBroadcastCostsNMinusOneSquaredOnABenignNetwork(t *testing.T) {
	actortest.Virtual(t, testBroadcastCostsNMinusOneSquaredOnABenignNetwork)
}

func testBroadcastCostsNMinusOneSquaredOnABenignNetwork(t *testing.T) {
	c := clustertest.NewCluster(t, 5)
	d := watch(t, c)
	startBroadcast(t, c)
	bcast(t, c.Node("node-3"), "x")
	actortest.Eventually(t, 10*time.Second, "all deliver", func() bool {
		for _, n := range c.Names() {
			if distinct, _ := d.count(n); distinct != 1 {
				return false
			}
		}
		return true
	})
	data := func() int64 {
		return c.Hub.Stats().Total(func(k sim.Key) bool { return k.Protocol == string(broadcast.Name) && k.Type != "ack" }).Sent
	}
	actortest.Eventually(t, 10*time.Second, "every forward sent", func() bool { return data() >= 16 })
	if got := data(); got != 16 {
		t.Fatalf("%d BroadcastMessages for one broadcast on 5 nodes; flooding costs (N-1)² = 16", got)
	}
}

func TestNeighbourNotificationsChangeTheFlood(t *testing.T) {
	actortest.Virtual(t, testNeighbourNotificationsChangeTheFlood)
}

func testNeighbourNotificationsChangeTheFlood(t *testing.T) {
	c := clustertest.NewCluster(t, 3)
	d := watch(t, c)
	cfg := broadcast.DefaultConfig()
	if err := c.Start(broadcast.New(cfg)); err != nil { // no neighbours yet
		t.Fatal(err)
	}
	id := bcast(t, c.Node("node-1"), "alone")
	if !d.has("node-1", "node-1", id) {
		actortest.Eventually(t, 10*time.Second, "the origin delivers", func() bool { return d.has("node-1", "node-1", id) })
	}
	c.Node("node-1").Publish(&broadcast.NeighbourUp{Node: "node-2"})
	id = bcast(t, c.Node("node-1"), "pair")
	actortest.Eventually(t, 10*time.Second, "node-2 delivers", func() bool { return d.has("node-2", "node-1", id) })
	if d.has("node-3", "node-1", id) {
		t.Fatal("node-3 is nobody's neighbour but delivered")
	}
	c.Node("node-1").Publish(&broadcast.NeighbourDown{Node: "node-2"})
	id = bcast(t, c.Node("node-1"), "alone again")
	actortest.Eventually(t, 10*time.Second, "the origin delivers", func() bool { return d.has("node-1", "node-1", id) })
	_, _ = actors.Call(context.Background(), c.Node("node-2"), broadcast.Name, &broadcast.BroadcastRequest{})
	if d.has("node-2", "node-1", id) {
		t.Fatal("node-2 delivered after NeighbourDown")
	}
}

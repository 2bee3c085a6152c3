package telemetry_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/jobs/jobstest"
	"github.com/troupe-dev/troupe/kv"
	"github.com/troupe-dev/troupe/mutex"
	"github.com/troupe-dev/troupe/telemetry"
)

// testConfig is telemetry for tests: a status every 100ms.
func testConfig(logs *telemetry.LogBuffer) telemetry.Config {
	cfg := telemetry.DefaultConfig()
	cfg.StatusInterval = 100 * time.Millisecond
	cfg.StaleAfter = 0 // three intervals
	cfg.LogsTimeout = time.Second
	cfg.Logs = logs
	return cfg
}

// newCluster starts n nodes on the sim network with membership, the Bully
// elector, the jobs protocol and telemetry (set up by cfg; its Logs, if
// any, receive every node's logs at debug level), waiting until every node
// follows node-n.
func newCluster(t testing.TB, n int, cfg telemetry.Config, opts ...cluster.Option) *cluster.Cluster {
	t.Helper()
	jcfg := jobs.DefaultConfig()
	jcfg.Slots = 1
	return newJobsCluster(t, n, cfg, jcfg, opts...)
}

// newJobsCluster is newCluster with the jobs protocol set up by jcfg.
func newJobsCluster(t testing.TB, n int, cfg telemetry.Config, jcfg jobs.Config, opts ...cluster.Option) *cluster.Cluster {
	t.Helper()
	if cfg.Logs != nil {
		opts = append(opts, cluster.Logger(zerolog.New(cfg.Logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()))
	}
	c := jobstest.NewCluster(t, n, jcfg, opts...)
	startTelemetry(t, c, cfg)
	return c
}

// startTelemetry starts telemetry on every node of c and waits until every
// node's telemetry knows every member.
func startTelemetry(t testing.TB, c *cluster.Cluster, cfg telemetry.Config) {
	t.Helper()
	n := len(c.Names())
	f, err := telemetry.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(f); err != nil {
		t.Fatal(err)
	}
	// SWIM may suspect a member of a loaded machine for a while (the
	// race detector on two shared cores makes its 50ms probes miss): wait
	// for every node to know every member, in whatever state.
	var views []string
	err = actortest.WaitFor(10*time.Second, func() bool {
		views = views[:0]
		ok := true
		for _, node := range c.Nodes() {
			s := snapshot(t, node)
			var v []string
			for _, m := range s.Members {
				v = append(v, string(m.Name)+":"+m.State)
			}
			views = append(views, fmt.Sprintf("%s sees %v", node.Name(), v))
			ok = ok && len(s.Members) == n
		}
		return ok
	})
	if err != nil {
		t.Fatalf("not every node's telemetry knows %d members: %v", n, views)
	}
}

func snapshot(t testing.TB, n *actors.Node) telemetry.Snapshot {
	t.Helper()
	s, err := actors.Call(context.Background(), n, telemetry.Name, telemetry.SnapshotRequest{})
	if err != nil {
		t.Fatalf("snapshot of %s: %v", n.Name(), err)
	}
	return s
}

func history(t testing.TB, n *actors.Node) []telemetry.Alert {
	t.Helper()
	h, err := actors.Call(context.Background(), n, telemetry.Name, telemetry.AlertsRequest{})
	if err != nil {
		t.Fatalf("alert history of %s: %v", n.Name(), err)
	}
	return h
}

// findAlert returns the newest alert of kind about subject in n's history
// that n received at or after since.
func findAlert(t testing.TB, n *actors.Node, kind telemetry.Kind, subject string, since time.Time) (telemetry.Alert, bool) {
	t.Helper()
	h := history(t, n)
	i := slices.IndexFunc(h, func(a telemetry.Alert) bool {
		return a.Kind == kind && a.Subject == subject && !a.Received.Before(since)
	})
	if i < 0 {
		return telemetry.Alert{}, false
	}
	return h[i], true
}

// waitAlert waits until every node in nodes holds an alert of kind about
// subject received at or after since, and returns them by node.
func waitAlert(t testing.TB, c *cluster.Cluster, nodes []actors.NodeName, kind telemetry.Kind, subject string, since time.Time, within time.Duration) map[actors.NodeName]telemetry.Alert {
	t.Helper()
	got := map[actors.NodeName]telemetry.Alert{}
	err := actortest.WaitFor(within, func() bool {
		for _, name := range nodes {
			if a, ok := findAlert(t, c.Node(name), kind, subject, since); ok {
				got[name] = a
			}
		}
		return len(got) == len(nodes)
	})
	if err != nil {
		t.Fatalf("%s alert about %s: only %d of %v hold one within %v", kind, subject, len(got), nodes, within)
	}
	return got
}

// startRaft starts a raft group of every node of c, without fsync.
func startRaft(t testing.TB, c *cluster.Cluster) {
	t.Helper()
	consensustest.StartOn(t, c, consensustest.Options{Machines: []consensus.Machine{kv.DefaultMachine(), mutex.LockMachine()},
		Config: func(rc *consensus.Config) { // the product's timing
			d := consensus.DefaultConfig()
			rc.TickInterval, rc.ElectionTicks, rc.HeartbeatTicks, rc.RequestTimeout = d.TickInterval, d.ElectionTicks, d.HeartbeatTicks, d.RequestTimeout
		}})
}

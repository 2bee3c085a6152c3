package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/jobs/jobstest"
	"github.com/troupe-dev/troupe/membership"
)

func jobsCfg(t *testing.T, mod func(*jobs.Config)) jobs.Config {
	t.Helper()
	cfg := jobs.DefaultConfig()
	cfg.Slots = 1
	if mod != nil {
		mod(&cfg)
	}
	return cfg
}

func newCluster(t *testing.T, n int, cfg jobs.Config) *cluster.Cluster {
	t.Helper()
	return jobstest.NewCluster(t, n, cfg)
}

func stats(t *testing.T, n *actors.Node) jobs.Stats {
	t.Helper()
	return jobstest.Stats(t, n)
}

func follow(t *testing.T, c *cluster.Cluster, names []actors.NodeName, leader actors.NodeName) {
	t.Helper()
	jobstest.Follow(t, c, names, leader)
}

func await(t *testing.T, n *actors.Node, id string, within time.Duration) jobs.Status {
	t.Helper()
	return jobstest.Await(t, n, id, within)
}

const failover = jobstest.Failover

func submit(t *testing.T, n *actors.Node, script []byte, input string, parts int) string {
	t.Helper()
	return submit2(t, n, "", script, input, parts)
}

func submit2(t *testing.T, n *actors.Node, runtime string, script []byte, input string, parts int) string {
	t.Helper()
	s, err := actors.Call(context.Background(), n, jobs.Name, jobs.Submit{Runtime: runtime, Script: string(script), Input: json.RawMessage(input), Parts: parts})
	if err != nil {
		t.Fatalf("submitting to %s: %v", n.Name(), err)
	}
	return s.ID
}

func status(t *testing.T, n *actors.Node, id string) jobs.Status {
	t.Helper()
	st, err := actors.Call(context.Background(), n, jobs.Name, jobs.StatusRequest{ID: id})
	if err != nil {
		t.Fatalf("status of %s at %s: %v", id, n.Name(), err)
	}
	return st
}

// awaitParts waits until at least k parts of the job are done at its
// contact, or it ended.
func awaitParts(t *testing.T, c *cluster.Cluster, contact actors.NodeName, id string, k int) {
	t.Helper()
	err := actortest.WaitFor(20*time.Second, func() bool {
		st := status(t, c.Node(contact), id)
		return st.PartsDone >= k || st.State.Ended()
	})
	if err != nil {
		dump(t, c)
		t.Fatalf("%d parts of %s done: %v; job %+v", k, id, err, status(t, c.Node(contact), id))
	}
}

// dump logs every running node's jobs counters.
func dump(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	for _, n := range c.Nodes() {
		t.Logf("%s: %+v", n.Name(), stats(t, n))
	}
}

func squaresInput(n, spin int) string {
	xs := make([]string, n)
	for i := range xs {
		xs[i] = fmt.Sprint(i + 1)
	}
	return fmt.Sprintf(`{"numbers": [%s], "spin": %d}`, strings.Join(xs, ","), spin)
}

// reference runs the job on one node, in this goroutine.
func reference(t *testing.T, script []byte, input string, parts int) string {
	t.Helper()
	rt, err := jobs.Starlark(jobs.StarlarkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := jobs.RunLocal(context.Background(), rt, script, []byte(input), parts)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func mustSucceed(t *testing.T, st jobs.Status, want string) {
	t.Helper()
	if st.State != jobs.Succeeded {
		t.Fatalf("job %s %s: %s", st.ID, st.State, st.Error)
	}
	if string(st.Result) != want {
		t.Fatalf("job %s gave %s; a single-node run gives %s", st.ID, st.Result, want)
	}
	if st.PartsDone != st.PartsTotal {
		t.Errorf("job %s: %d of %d parts done", st.ID, st.PartsDone, st.PartsTotal)
	}
	sum := 0
	for _, n := range st.PartsByNode {
		sum += n
	}
	if sum != st.PartsTotal {
		t.Errorf("job %s: parts by node %v add to %d, want %d", st.ID, st.PartsByNode, sum, st.PartsTotal)
	}
}

func partsRun(t *testing.T, c *cluster.Cluster) map[actors.NodeName]int64 {
	out := map[actors.NodeName]int64{}
	for _, n := range c.Nodes() {
		out[n.Name()] = stats(t, n).PartsRun
	}
	return out
}

func TestDistributedResultEqualsSingleNode(t *testing.T) {
	c := newCluster(t, 5, jobsCfg(t, nil))
	script := readScript(t, "squares.star")
	input := squaresInput(200, 2000)
	want := reference(t, script, input, 20)

	id := submit(t, c.Node("node-2"), script, input, 20)
	if got := jobs.ContactOf(id); got != "node-2" {
		t.Errorf("job id %s names contact %q", id, got)
	}
	st := await(t, c.Node("node-2"), id, 30*time.Second)
	mustSucceed(t, st, want)
	if st.PartsTotal != 20 {
		t.Errorf("%d parts, want 20", st.PartsTotal)
	}
	runs := partsRun(t, c)
	busy := 0
	for _, n := range runs {
		if n > 0 {
			busy++
		}
	}
	if busy < 3 {
		t.Errorf("parts ran on %d nodes only: %v", busy, runs)
	}
	t.Logf("parts per node %v, took %v", runs, st.Ended.Sub(st.Submitted))

	// The contact answers; another node asks it.
	if at3, err := actors.Call(context.Background(), c.Node("node-3"), jobs.Name, jobs.StatusRequest{ID: id}); err != nil || at3.State != jobs.Succeeded || string(at3.Result) != want {
		t.Errorf("status at another node: %+v, %v; want the contact's", at3, err)
	}
	list, err := actors.Call(context.Background(), c.Node("node-2"), jobs.Name, jobs.ListRequest{})
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].State != jobs.Succeeded {
		t.Errorf("list at the contact: %+v, %v", list, err)
	}
}

func TestWorkerCrashMidJob(t *testing.T) {
	c := newCluster(t, 5, jobsCfg(t, nil))
	script := readScript(t, "squares.star")
	input := squaresInput(120, 20000)
	want := reference(t, script, input, 40)

	id := submit(t, c.Node("node-1"), script, input, 40)
	awaitParts(t, c, "node-1", id, 5)
	if s := stats(t, c.Node("node-3")); s.Running == 0 && s.Waiting == 0 {
		t.Logf("node-3 holds no part at the crash (%+v)", s)
	}
	if err := c.Crash("node-3"); err != nil {
		t.Fatal(err)
	}
	mustSucceed(t, await(t, c.Node("node-1"), id, 60*time.Second), want)
}

func TestLeaderCrashMidJob(t *testing.T) {
	// The bound below holds when no survivor is taken for failed: a false
	// failure hands its parts to another worker (correctly, and they run
	// twice). SWIM that a loaded host does not fool.
	c := jobstest.NewCluster(t, 5, jobsCfg(t, func(cfg *jobs.Config) { cfg.Backup = -1 }), cluster.Membership(clustertest.SteadySimMembership()))
	script := readScript(t, "squares.star")
	input := squaresInput(120, 20000)
	want := reference(t, script, input, 40)

	id := submit(t, c.Node("node-1"), script, input, 40)
	awaitParts(t, c, "node-1", id, 10)
	survivors := c.Names()[:4]
	// done first: a part that ends between the two readings then counts
	// in neither, which can only lower the runs counted after the crash.
	done := status(t, c.Node("node-1"), id).PartsDone
	before := partsRun(t, c)
	// A part in flight on a survivor may run twice: when its worker's
	// report reaches the new leader only after Settle (a loaded machine),
	// the leader hands it out again. A finished part never runs again.
	var inFlight int64
	for _, name := range survivors {
		s := stats(t, c.Node(name))
		inFlight += int64(s.Running + s.Waiting)
	}
	if err := c.Crash("node-5"); err != nil {
		t.Fatal(err)
	}
	st := await(t, c.Node("node-1"), id, 60*time.Second)
	mustSucceed(t, st, want)
	// No part finished at the contact runs again: the survivors ran at
	// most the parts not done at the crash.
	after := partsRun(t, c)
	var ran int64
	for _, name := range survivors {
		ran += after[name] - before[name]
	}
	if limit := int64(st.PartsTotal-done) + inFlight; ran > limit {
		t.Errorf("after the leader's crash the survivors ran %d parts; only %d were not done, %d of them in flight on survivors (runs before %v, after %v)", ran, int64(st.PartsTotal-done), inFlight, before, after)
	}
	t.Logf("%d parts done at the crash, %d in flight on survivors; %d runs after it", done, inFlight, ran)
	follow(t, c, survivors, "node-4")
}

// longJob's parts run until cancelled (or for minutes).
const longJob = `
def split(input, n):
    return list(range(n))

def run(part):
    x = 0
    while True:
        x += 1

def merge(results):
    return len(results)
`

func longCfg(t *testing.T) jobs.Config {
	rt, err := jobs.Starlark(jobs.StarlarkConfig{Limits: jobs.Limits{MaxSteps: 1 << 62, Timeout: 5 * time.Minute, MaxResultBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	return jobsCfg(t, func(cfg *jobs.Config) { cfg.Runtimes = []jobs.Runtime{rt} })
}

// awaitIdle waits until no node among names runs or holds a part.
func awaitIdle(t *testing.T, c *cluster.Cluster, names []actors.NodeName, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last []string
	err := actortest.WaitFor(within, func() bool {
		last = last[:0]
		for _, name := range names {
			if s := stats(t, c.Node(name)); s.Running+s.Waiting > 0 {
				last = append(last, fmt.Sprintf("%s runs %d, holds %d", name, s.Running, s.Waiting))
			}
		}
		return len(last) == 0
	})
	if err != nil {
		t.Fatalf("parts still run after %v: %v", within, last)
	}
	return time.Since(start)
}

// awaitBusy waits until every node among names runs a part.
func awaitBusy(t *testing.T, c *cluster.Cluster, names []actors.NodeName) {
	t.Helper()
	actortest.Eventually(t, 20*time.Second, "every node runs a part", func() bool {
		for _, name := range names {
			if stats(t, c.Node(name)).Running == 0 {
				return false
			}
		}
		return true
	})
}

func TestCancelFromAnotherNodeStopsEveryPart(t *testing.T) {
	c := newCluster(t, 5, longCfg(t))
	id := submit(t, c.Node("node-1"), []byte(longJob), `null`, 10)
	awaitBusy(t, c, c.Names())
	rep, err := jobs.CancelJob(context.Background(), c.Node("node-4"), id, "")
	if err != nil || rep.ForwardedTo != "node-1" || rep.Status == nil || rep.Status.State != jobs.Cancelled {
		t.Fatalf("cancel through node-4: %+v, %v; want the contact node-1's status, cancelled", rep, err)
	}
	took := awaitIdle(t, c, c.Names(), 30*time.Second)
	st := status(t, c.Node("node-1"), id)
	if st.State != jobs.Cancelled || !strings.Contains(st.Error, "node-4") {
		t.Errorf("job after cancel: %+v", st)
	}
	t.Logf("every part stopped %v after the cancel", took)

	// A second cancel at the contact changes nothing.
	rep, err = jobs.CancelJob(context.Background(), c.Node("node-1"), id, "")
	if err != nil || rep.Status == nil || rep.Status.State != jobs.Cancelled {
		t.Errorf("second cancel: %+v, %v", rep, err)
	}
}

func TestContactCrashLeavesNoPartRunning(t *testing.T) {
	c := newCluster(t, 5, longCfg(t))
	submit(t, c.Node("node-2"), []byte(longJob), `null`, 10)
	survivors := []actors.NodeName{"node-1", "node-3", "node-4", "node-5"}
	awaitBusy(t, c, survivors)
	if err := c.Crash("node-2"); err != nil {
		t.Fatal(err)
	}
	took := awaitIdle(t, c, survivors, failover)
	if s := stats(t, c.Node("node-5")); s.LeaderJobs != 0 {
		t.Errorf("the leader still schedules %d jobs", s.LeaderJobs)
	}
	t.Logf("every part stopped %v after the contact's crash", took)
}

func TestBadJobsFailWithClearErrors(t *testing.T) {
	rt, err := jobs.Starlark(jobs.StarlarkConfig{Limits: jobs.Limits{MaxSteps: 1_000_000, Timeout: 10 * time.Second, MaxResultBytes: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, 3, jobsCfg(t, func(cfg *jobs.Config) { cfg.Runtimes = []jobs.Runtime{rt} }))
	n := c.Node("node-1")
	for _, tc := range []struct {
		name, script string
		says         []string
	}{
		{"syntax error", "def split(input, n):\n    return [1]\ndef run(part)\n    return 1\n", []string{"load:", "job.star:4:1", "want ':'"}},
		{"endless loop", "def split(i, n):\n    return [1, 2]\ndef run(p):\n    while True:\n        pass\ndef merge(r):\n    return r\n", []string{"part ", "step limit exceeded", "1000000 steps"}},
		{"result too large", "def split(i, n):\n    return [1]\ndef run(p):\n    return \"x\" * 5000\ndef merge(r):\n    return r\n", []string{"result too large", "1000"}},
		{"merge fails", "def split(i, n):\n    return [1]\ndef run(p):\n    return p\ndef merge(r):\n    return r[5]\n", []string{"merge:", "job.star:6:", "out of range"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := await(t, n, submit(t, n, []byte(tc.script), `null`, 0), 20*time.Second)
			if st.State != jobs.Failed {
				t.Fatalf("job %s, want failed: %+v", st.State, st)
			}
			for _, s := range tc.says {
				if !strings.Contains(st.Error, s) {
					t.Errorf("error %q does not say %q", st.Error, s)
				}
			}
		})
	}
	t.Run("no parts", func(t *testing.T) {
		src := "def split(i, n):\n    return []\ndef run(p):\n    return p\ndef merge(r):\n    return {\"n\": len(r)}\n"
		mustSucceed(t, await(t, n, submit(t, n, []byte(src), `null`, 0), 20*time.Second), `{"n":0}`)
	})
	t.Run("parts left to the leader", func(t *testing.T) {
		src := "def split(i, n):\n    return list(range(n))\ndef run(p):\n    return p\ndef merge(r):\n    return len(r)\n"
		// PartsPerMember (4) per live member (3).
		mustSucceed(t, await(t, n, submit(t, n, []byte(src), `null`, 0), 20*time.Second), `12`)
	})
	for _, tc := range []struct {
		name string
		sub  jobs.Submit
		is   error
	}{
		{"unknown runtime", jobs.Submit{Runtime: "lua", Script: "x"}, jobs.ErrUnknownRuntime},
		{"exec disabled", jobs.Submit{Runtime: "exec", Script: "x"}, jobs.ErrRuntimeDisabled},
		{"empty script", jobs.Submit{}, jobs.ErrInvalidJob},
		{"input not JSON", jobs.Submit{Script: "x", Input: json.RawMessage(`{`)}, jobs.ErrInvalidJob},
		{"too many parts", jobs.Submit{Script: "x", Parts: 1 << 20}, jobs.ErrInvalidJob},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := actors.Call(context.Background(), n, jobs.Name, tc.sub)
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
		})
	}
}

// Stopping the nodes stops the parts they run: no goroutine of the jobs
// package outlives the cluster.
func TestStopLeavesNoPartRunning(t *testing.T) {
	c := newCluster(t, 3, longCfg(t))
	submit(t, c.Node("node-1"), []byte(longJob), `null`, 6)
	awaitBusy(t, c, c.Names())
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := actortest.NoGoroutinesOf("troupe/jobs."); err != nil {
		t.Fatal(err)
	}
}

// A partition gives each side a leader (Bully has no quorum). The contact's
// side goes on with the job under its own leader; the other side's leader
// drops it (its contact looks failed). After healing, one leader remains
// and the job ends with the single-node result.
func TestPartitionTwoLeaders(t *testing.T) {
	c := newCluster(t, 5, jobsCfg(t, nil))
	script := readScript(t, "squares.star")
	spin := 60000 // parts of about 30 ms: the job outlasts detection and election
	if actortest.RaceEnabled {
		spin /= 5 // the race detector slows Starlark about as much
	}
	input := squaresInput(120, spin)
	want := reference(t, script, input, 40)

	id := submit(t, c.Node("node-1"), script, input, 40)
	awaitParts(t, c, "node-1", id, 3)
	small, big := []actors.NodeName{"node-1", "node-2"}, []actors.NodeName{"node-3", "node-4", "node-5"}
	c.Partition(small, big)
	follow(t, c, small, "node-2")
	follow(t, c, big, "node-5")
	actortest.Eventually(t, failover, "node-5 drops the job of its lost contact", func() bool {
		return stats(t, c.Node("node-5")).LeaderJobs == 0
	})
	done := status(t, c.Node("node-1"), id).PartsDone
	awaitParts(t, c, "node-1", id, done+2) // progress on the contact's side alone
	st := status(t, c.Node("node-1"), id)
	if st.State.Ended() {
		t.Fatalf("the job ended before the partition healed (%+v): make its parts longer", st)
	}
	t.Logf("parts done: %d when the big side dropped the job, %d at the heal", done, st.PartsDone)
	c.Hub.Heal()
	// Membership merges the sides (its reconnect loop), then Bully elects
	// across them: as in the election tests, allow 20 s and more.
	jobstest.FollowWithin(t, c, c.Names(), "node-5", 30*time.Second)
	err := actortest.WaitFor(60*time.Second, func() bool { return status(t, c.Node("node-1"), id).State.Ended() })
	if err != nil {
		dump(t, c)
		t.Fatalf("job %+v", status(t, c.Node("node-1"), id))
	}
	mustSucceed(t, status(t, c.Node("node-1"), id), want)
}

// A supervised restart of the leader's jobs protocol empties its schedule;
// its Restarted message makes the contacts and workers hand it the jobs and
// parts again, and the job ends with the single-node result.
func TestLeaderProtocolRestartMidJob(t *testing.T) {
	c := newCluster(t, 5, jobsCfg(t, nil))
	script := readScript(t, "squares.star")
	input := squaresInput(120, 20000)
	want := reference(t, script, input, 40)
	id := submit(t, c.Node("node-1"), script, input, 40)
	awaitParts(t, c, "node-1", id, 5)
	// A nil notification makes the handler panic: the supervisor restarts
	// the protocol from a fresh value, as after any bug. The jobs protocol
	// is its only subscriber on the node.
	c.Node("node-5").Publish((*election.LeaderChanged)(nil))
	actortest.Eventually(t, 5*time.Second, "the leader's jobs protocol restarted", func() bool {
		return c.Node("node-5").Stats().Protocols[jobs.Name].Restarts > 0
	})
	err := actortest.WaitFor(30*time.Second, func() bool { return status(t, c.Node("node-1"), id).State.Ended() })
	if err != nil {
		dump(t, c)
		t.Fatalf("job %+v", status(t, c.Node("node-1"), id))
	}
	mustSucceed(t, status(t, c.Node("node-1"), id), want)
}

// A supervised restart of a contact's jobs protocol forgets its jobs (state
// is in memory); their parts stop everywhere and the leader drops them.
func TestContactProtocolRestartStopsItsParts(t *testing.T) {
	c := newCluster(t, 5, longCfg(t))
	id := submit(t, c.Node("node-2"), []byte(longJob), `null`, 10)
	awaitBusy(t, c, c.Names())
	c.Node("node-2").Publish((*election.LeaderChanged)(nil)) // its jobs protocol panics on it
	took := awaitIdle(t, c, c.Names(), 30*time.Second)
	if s := stats(t, c.Node("node-5")); s.LeaderJobs != 0 {
		t.Errorf("the leader still schedules %d jobs", s.LeaderJobs)
	}
	if _, err := actors.Call(context.Background(), c.Node("node-2"), jobs.Name, jobs.StatusRequest{ID: id}); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("status after the contact's restart: %v, want ErrNotFound", err)
	}
	t.Logf("every part stopped %v after the restart", took)
}

// A leader whose belief flips to another node and back drops its schedule
// on the way, while the contact, which never stopped following it, has no
// reason to hand the job over again: the leader's announcement on taking
// the lead back makes it do so, and the job ends.
func TestLeaderBeliefFlipDoesNotLoseTheJob(t *testing.T) {
	c := newCluster(t, 5, jobsCfg(t, nil))
	script := readScript(t, "squares.star")
	input := squaresInput(120, 20000)
	want := reference(t, script, input, 40)
	id := submit(t, c.Node("node-1"), script, input, 40)
	awaitParts(t, c, "node-1", id, 5)
	lead := stats(t, c.Node("node-5"))
	if !lead.Leading {
		t.Fatalf("node-5 does not lead: %+v", lead)
	}
	// Only node-5 hears of the flip (its jobs protocol is the only
	// subscriber there).
	for _, ev := range []*election.LeaderChanged{{Leader: "node-4", Term: lead.Term + 1}, {Leader: "node-5", Term: lead.Term + 2}} {
		c.Node("node-5").Publish(ev)
	}
	err := actortest.WaitFor(30*time.Second, func() bool { return status(t, c.Node("node-1"), id).State.Ended() })
	if err != nil {
		dump(t, c)
		t.Fatalf("job %+v", status(t, c.Node("node-1"), id))
	}
	mustSucceed(t, status(t, c.Node("node-1"), id), want)
}

// A leader that sees the contact fail drops its jobs; when the contact is
// seen alive again (it never failed: a false suspicion under load), the
// leader asks it to hand them over again, and the job ends.
func TestContactFalselyFailedAtTheLeaderKeepsItsJob(t *testing.T) {
	c := newCluster(t, 5, jobsCfg(t, nil))
	script := readScript(t, "squares.star")
	input := squaresInput(120, 20000)
	want := reference(t, script, input, 40)
	id := submit(t, c.Node("node-1"), script, input, 40)
	awaitParts(t, c, "node-1", id, 5)
	// Only the leader's node hears of the false failure.
	contact := membership.Member{Name: "node-1"}
	for _, ev := range []any{&membership.MemberFailed{Member: contact}, &membership.MemberJoined{Member: contact}} {
		c.Node("node-5").Publish(ev)
	}
	err := actortest.WaitFor(30*time.Second, func() bool { return status(t, c.Node("node-1"), id).State.Ended() })
	if err != nil {
		dump(t, c)
		t.Fatalf("job %+v", status(t, c.Node("node-1"), id))
	}
	mustSucceed(t, status(t, c.Node("node-1"), id), want)
}

// A worker that sees the contact fail stops the contact's parts; the
// leader, which still sees the contact, must learn that the worker no
// longer runs them (they come back as refused) and hand them to others,
// or the job waits for them forever (backups are off).
func TestContactFalselyFailedAtAWorkerKeepsItsJob(t *testing.T) {
	c, id, open := gatedCluster(t, "node-1")
	// Only node-2 hears of the false failure.
	contact := membership.Member{Name: "node-1"}
	for _, ev := range []any{&membership.MemberFailed{Member: contact}, &membership.MemberJoined{Member: contact}} {
		c.Node("node-2").Publish(ev)
	}
	actortest.Eventually(t, 10*time.Second, "the leader queues node-2's 2 parts again", func() bool {
		s := stats(t, c.Node("node-3"))
		return s.Queued == 2
	})
	open()
	st := await(t, c.Node("node-1"), id, 30*time.Second)
	mustSucceed(t, st, "15") // 0+1+...+5
	if s := stats(t, c.Node("node-2")); s.Cancelled != 2 {
		t.Errorf("node-2 cancelled %d parts, want its 2", s.Cancelled)
	}
}

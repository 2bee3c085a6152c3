package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/config"
)

// The availability tests of issue 17 on loopback, with real `node run`
// nodes: a leader change with forwarded writes in flight, and a minority
// left without a quorum. consensus/leaderchange_test.go and
// telemetry/lifecycle_test.go test the same on the simulated network.

// raftGroup is the flags of a three-node raft group on loopback (the
// README's recipe: the first node starts the cluster, the others join it;
// each has a data dir), the base URLs of their APIs and their log files.
type raftGroup struct {
	names []string
	flags []map[string]string
	https []string
	logs  []string
	procs []*exec.Cmd // the nodes run as processes (nil: not one, or not started)
}

func newRaftGroup(t *testing.T) *raftGroup {
	t.Helper()
	g := &raftGroup{names: []string{"node-1", "node-2", "node-3"}}
	ports := actortest.FreePorts(t, 3*len(g.names)) // per node: remote, gossip, http
	logDir := t.TempDir()
	for i, name := range g.names {
		f := loopbackFlags(name, ports[3*i:])
		f["election.elector"], f["raft.peers"], f["node.data_dir"] = "raft", strings.Join(g.names, ","), t.TempDir()
		if i > 0 {
			f["membership.join"] = g.flags[0]["membership.gossip"]
		}
		g.flags = append(g.flags, f)
		g.https = append(g.https, "http://"+f["api.listen"])
		g.logs = append(g.logs, filepath.Join(logDir, name+".log"))
	}
	g.procs = make([]*exec.Cmd, len(g.names))
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for i, l := range g.logs {
			if out, err := os.ReadFile(l); err == nil {
				t.Logf("%s's log:\n%s", g.names[i], out)
			}
		}
	})
	return g
}

// start runs node i as a process of its own (startNodeProcess).
func (g *raftGroup) start(t *testing.T, i int) {
	t.Helper()
	g.procs[i] = startNodeProcess(t, g.flags[i], g.logs[i])
}

// kill ends node i's process with SIGKILL: no goodbye, no flush.
func (g *raftGroup) kill(t *testing.T, i int) {
	t.Helper()
	if err := g.procs[i].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = g.procs[i].Wait()
}

func (g *raftGroup) index(name string) int { return slices.Index(g.names, name) }

// agreedLeader waits until the nodes at idx agree on a raft leader that is
// not `not`, and returns it.
func (g *raftGroup) agreedLeader(t *testing.T, client *http.Client, idx []int, not string) string {
	t.Helper()
	var leader string
	actortest.Eventually(t, 30*time.Second, fmt.Sprintf("nodes %v agree on a raft leader other than %q", idx, not), func() bool {
		leader = ""
		for _, i := range idx {
			st, ok := getStatus(client, g.https[i])
			if !ok || st.Leader == "" || st.Leader == not || leader != "" && st.Leader != leader {
				return false
			}
			leader = st.Leader
		}
		return true
	})
	return leader
}

// apiReply is a node's answer: its status, its body, and the error and
// code of an error's JSON.
type apiReply struct {
	status  int
	body    []byte
	code    string
	message string
	err     error // the request got no answer
}

func doAPI(client *http.Client, method, url, body string) apiReply {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return apiReply{err: err}
	}
	resp, err := client.Do(req)
	if err != nil {
		return apiReply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return apiReply{err: err}
	}
	r := apiReply{status: resp.StatusCode, body: b}
	if r.status != http.StatusOK {
		var e struct{ Error, Code string }
		_ = json.Unmarshal(b, &e)
		r.code, r.message = e.Code, e.Error
	}
	return r
}

// outcome names a write's answer for the counts.
func (r apiReply) outcome() string {
	switch {
	case r.err != nil:
		return "no answer"
	case r.status == http.StatusOK:
		return "200"
	default:
		return fmt.Sprintf("%d %s", r.status, r.code)
	}
}

// TestLeaderChangeLosesNoForwardedWriteOnLoopback: 30 clients write
// distinct keys through a follower's API, which forwards them to the
// leader; the leader is killed with SIGKILL while they are in flight. Each
// write ends applied (200, and the key then holds its value), refused
// (503 not_applied, election or no_quorum, and the key is then absent), or
// — only for one that was proposed — 504 unknown. No acknowledged write is
// missing after the survivors elect a new leader.
func TestLeaderChangeLosesNoForwardedWriteOnLoopback(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	g := newRaftGroup(t)
	for i := range g.names {
		g.start(t, i)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	leader := g.agreedLeader(t, client, []int{0, 1, 2}, "")
	li := g.index(leader)
	fi := (li + 1) % len(g.names) // the follower the clients write through
	oi := (li + 2) % len(g.names) // the other survivor
	follower := g.https[fi]

	// A write's answer comes within the server's kv timeout (consensus
	// HTTPTimeout + 1 s); the client's bound only detects a hang.
	writer := &http.Client{Timeout: 20 * time.Second}
	type write struct {
		key, value string
		start, end time.Time
		reply      apiReply
	}
	const clients = 30
	var (
		mu        sync.Mutex
		writes    []write
		succeeded atomic.Int64
		wg        sync.WaitGroup
		stop      = make(chan struct{})
	)
	stopClients := sync.OnceFunc(func() { close(stop) })
	defer wg.Wait()
	defer stopClients()
	for c := range clients {
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				w := write{key: fmt.Sprintf("w-%02d-%04d", c, j), value: fmt.Sprintf("v-%d-%d", c, j), start: time.Now()}
				w.reply = doAPI(writer, http.MethodPut, follower+kvPath(w.key), w.value)
				w.end = time.Now()
				mu.Lock()
				writes = append(writes, w)
				mu.Unlock()
				if w.reply.status == http.StatusOK {
					succeeded.Add(1)
					continue
				}
				// Refused (an election): pace the retries, as a client
				// honouring Retry-After would, if more gently.
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		})
	}
	actortest.Eventually(t, 20*time.Second, "writes through the follower succeed", func() bool { return succeeded.Load() >= 3*clients })
	killAt := time.Now()
	g.kill(t, li)
	killed := time.Now()
	newLeader := g.agreedLeader(t, client, []int{fi, oi}, leader)
	elected := time.Now()
	// Let the clients write under the new leader for a moment, so that
	// the writes held through the election reach it too.
	after := succeeded.Load()
	actortest.Eventually(t, 20*time.Second, "writes succeed under the new leader", func() bool { return succeeded.Load() >= after+clients })
	stopClients()
	wg.Wait()

	// Every write is checked through the other survivor (a linearizable
	// read): applied ones hold their value, refused ones are absent.
	counts := map[string]int{}
	inFlight := map[string]int{} // writes started before the kill and answered after it
	var unknownInFlight []string
	reader := &http.Client{Timeout: 10 * time.Second}
	var check sync.WaitGroup
	sem := make(chan struct{}, clients)
	for i := range writes {
		w := &writes[i]
		o := w.reply.outcome()
		counts[o]++
		if w.start.Before(killAt) && w.end.After(killAt) {
			inFlight[o]++
			if w.reply.code == "unknown" {
				unknownInFlight = append(unknownInFlight, w.key)
			}
		}
		switch {
		case w.reply.status == http.StatusOK:
		case w.reply.status == http.StatusServiceUnavailable && slices.Contains([]string{"not_applied", "election", "no_quorum"}, w.reply.code):
		case w.reply.status == http.StatusGatewayTimeout && w.reply.code == "unknown":
			continue // may or may not have been applied
		default:
			t.Errorf("PUT %s through %s: %s %q; want 200, 503 not_applied/election/no_quorum, or 504 unknown", w.key, g.names[fi], o, w.reply.message)
			continue
		}
		check.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var r apiReply
			// Retried while the group cannot answer (503/504): a read
			// changes nothing.
			ok := actortest.WaitFor(20*time.Second, func() bool {
				r = doAPI(reader, http.MethodGet, g.https[oi]+kvPath(w.key), "")
				return r.status == http.StatusOK || r.status == http.StatusNotFound
			})
			switch {
			case ok != nil:
				t.Errorf("GET %s through %s: %s %q, never 200 or 404", w.key, g.names[oi], r.outcome(), r.message)
			case w.reply.status == http.StatusOK && (r.status != http.StatusOK || string(r.body) != w.value):
				t.Errorf("PUT %s answered 200 (%s, in %v), but %s reads %s %q: an acknowledged write is lost",
					w.key, w.reply.body, w.end.Sub(w.start).Round(time.Millisecond), g.names[oi], r.outcome(), r.body)
			case w.reply.status != http.StatusOK && r.status != http.StatusNotFound:
				t.Errorf("PUT %s answered %s %q, but %s reads it: %s %q; a refused write was applied",
					w.key, w.reply.outcome(), w.reply.message, g.names[oi], r.outcome(), r.body)
			}
		})
	}
	check.Wait()
	spanning := 0
	for _, n := range inFlight {
		spanning += n
	}
	t.Logf("leader %s killed, writes through %s; %s elected %v after the kill (the kill took %v); %d writes: %v; %d in flight at the kill: %v",
		leader, g.names[fi], newLeader, elected.Sub(killed).Round(time.Millisecond),
		killed.Sub(killAt).Round(time.Millisecond), len(writes), counts, spanning, inFlight)
	if spanning == 0 {
		t.Errorf("no write was in flight when the leader was killed: the test did not test a leader change under load")
	}
	if len(unknownInFlight) > 0 {
		t.Logf("writes forwarded in flight at the kill that answered 504 unknown (issue 17 wants them proposed again or answered not_applied): %v", unknownInFlight)
	}
	if st, ok := raftStatusOf(client, g.https[fi]); ok {
		t.Logf("%s's raft status: proposals %d, reproposed %d, fenced %d", g.names[fi], st.Proposals, st.Reproposed, st.Fenced)
	}
}

// raftCounters is what the tests read of GET /v1/raft beyond the leader.
type raftCounters struct {
	Leader     string   `json:"leader"`
	Reason     string   `json:"reason"`
	Reachable  []string `json:"reachable"`
	Voters     []string `json:"voters"`
	Proposals  uint64   `json:"proposals"`
	Reproposed uint64   `json:"reproposed"`
	Fenced     uint64   `json:"fenced"`
}

func raftStatusOf(client *http.Client, base string) (raftCounters, bool) {
	var st raftCounters
	r := doAPI(client, http.MethodGet, base+"/v1/raft", "")
	return st, r.status == http.StatusOK && json.Unmarshal(r.body, &st) == nil
}

// alert is what the test reads of GET /v1/alerts.
type alert struct {
	Key        string    `json:"key"`
	Kind       string    `json:"kind"`
	State      string    `json:"state"`
	Message    string    `json:"message"`
	Started    time.Time `json:"started"`
	Ended      time.Time `json:"ended"`
	ResolvedBy string    `json:"resolved_by"`
}

// quorumAlert returns node's quorum_lost alert about itself, the newest
// one, from its history at base.
func quorumAlert(client *http.Client, base, node string) (alert, bool) {
	r := doAPI(client, http.MethodGet, base+"/v1/alerts", "")
	var list []alert
	if r.status != http.StatusOK || json.Unmarshal(r.body, &list) != nil {
		return alert{}, false
	}
	var found alert
	for _, a := range list {
		if a.Key == "quorum_lost/"+node && a.Started.After(found.Started) {
			found = a
		}
	}
	return found, found.Key != ""
}

// TestMinorityWithoutQuorumOnLoopback: node-1 runs in this process,
// node-2 and node-3 as processes; both are killed with SIGKILL. node-1
// then answers a write 503 no_quorum naming the count of voters it
// reaches, GET /v1/leader says so, and it raises a quorum_lost alert; once
// the two are back (the same data dirs) the alert is resolved and writes
// work again.
func TestMinorityWithoutQuorumOnLoopback(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	g := newRaftGroup(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runNode(ctx, config.Sources{Flags: g.flags[0]}) }()
	defer func() {
		cancel()
		select { // a hang detector, not a performance bound
		case err := <-done:
			if err != nil {
				t.Errorf("node-1 stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("node-1 did not stop within 30 s")
		}
	}()
	g.start(t, 1)
	g.start(t, 2)
	client := &http.Client{Timeout: 2 * time.Second}
	g.agreedLeader(t, client, []int{0, 1, 2}, "")
	writer := &http.Client{Timeout: 20 * time.Second}
	if r := doAPI(writer, http.MethodPut, g.https[0]+kvPath("before"), "1"); r.status != http.StatusOK {
		t.Fatalf("a put with the three nodes up: %s %q", r.outcome(), r.message)
	}
	// A start slower than telemetry's grace for voters not yet seen (a
	// loaded machine) may have raised one at start: it ends.
	actortest.Eventually(t, 30*time.Second, "node-1 has no active quorum alert with the three nodes up", func() bool {
		a, ok := quorumAlert(client, g.https[0], "node-1")
		return !ok || a.State == "resolved"
	})

	killStart := time.Now()
	g.kill(t, 1)
	g.kill(t, 2)
	lost := time.Now()
	var r apiReply
	actortest.Eventually(t, 30*time.Second, "node-1 answers a put 503 no_quorum", func() bool {
		r = doAPI(writer, http.MethodPut, g.https[0]+kvPath("k"), "v")
		return r.status == http.StatusServiceUnavailable && r.code == "no_quorum"
	})
	noQuorum := time.Since(lost)
	if !strings.Contains(r.message, "node-1 reaches 1 of 3 voters (node-1), a majority is 2") || strings.Contains(r.message, "retry") {
		t.Errorf("the no_quorum answer: %q; want the count of voters reachable, and no \"retry\"", r.message)
	}
	var counts struct{ Reachable, Voters int }
	if json.Unmarshal(r.body, &counts) != nil || counts.Reachable != 1 || counts.Voters != 3 {
		t.Errorf("the no_quorum answer's body: %s; want reachable 1, voters 3", r.body)
	}
	if r := doAPI(writer, http.MethodGet, g.https[0]+kvPath("before"), ""); r.status != http.StatusServiceUnavailable || r.code != "no_quorum" {
		t.Errorf("a linearizable read without a quorum: %s %q; want 503 no_quorum", r.outcome(), r.message)
	}
	var l struct {
		Leader, Reason, Message string
		Reachable, Voters       int
	}
	actortest.Eventually(t, 20*time.Second, "GET /v1/leader on node-1 says no leader, no quorum", func() bool {
		r := doAPI(client, http.MethodGet, g.https[0]+"/v1/leader", "")
		return r.status == http.StatusOK && json.Unmarshal(r.body, &l) == nil && l.Leader == "" && l.Reason == "no_quorum"
	})
	if l.Reachable != 1 || l.Voters != 3 || l.Message != "no leader: 1 of 3 voters reachable (node-1)" {
		t.Errorf("GET /v1/leader without a quorum: %+v; want 1 of 3 voters reachable (node-1)", l)
	}
	var raised alert
	actortest.Eventually(t, 30*time.Second, "node-1 raises an active quorum_lost alert", func() bool {
		a, ok := quorumAlert(client, g.https[0], "node-1")
		raised = a
		return ok && a.State == "active" && a.Ended.IsZero() && a.Started.After(killStart)
	})
	alerted := time.Since(lost)
	if raised.Kind != "quorum_lost" || !strings.Contains(raised.Message, "reaches 1 of its 3 voters") {
		t.Errorf("the quorum alert: %+v; want kind quorum_lost saying 1 of its 3 voters", raised)
	}

	// Back, with the same data dirs.
	g.start(t, 1)
	g.start(t, 2)
	back := time.Now()
	var resolved alert
	actortest.Eventually(t, 30*time.Second, "node-1's quorum_lost alert is resolved", func() bool {
		a, ok := quorumAlert(client, g.https[0], "node-1")
		resolved = a
		return ok && a.State == "resolved"
	})
	if !resolved.Started.Equal(raised.Started) || resolved.Ended.IsZero() || resolved.Ended.Before(resolved.Started) || resolved.ResolvedBy != "node-1" {
		t.Errorf("the resolved alert: %+v; want the one raised at %v, ended after it by node-1", resolved, raised.Started)
	}
	actortest.Eventually(t, 30*time.Second, "node-1 accepts a put again", func() bool {
		r = doAPI(writer, http.MethodPut, g.https[0]+kvPath("after"), "2")
		return r.status == http.StatusOK
	})
	for i, base := range g.https {
		actortest.Eventually(t, 30*time.Second, "GET before through "+g.names[i]+" reads 1", func() bool {
			r = doAPI(writer, http.MethodGet, base+kvPath("before"), "")
			return r.status == http.StatusOK && string(r.body) == "1"
		})
	}
	t.Logf("two of three killed: no_quorum after %v, quorum_lost alert after %v; both back: resolved and writable after %v",
		noQuorum.Round(time.Millisecond), alerted.Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
}

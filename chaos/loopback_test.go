//go:build unix && !docker

package chaos

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/kv"
)

var loopbackSeed = flag.Uint64("chaos.seed", 1, "seed of the loopback suite's clients and nemesis")

// Generous bounds: a restarted node may need half a minute to serve today
// (issue 17.1), and CI runs every package at once on two cores.
const (
	readyTimeout    = 90 * time.Second // a node serving a linearizable read
	progressTimeout = 90 * time.Second // a write acknowledged after a fault healed
	clientTimeout   = 8 * time.Second  // beyond the API's own 6 s key-value deadline
	keys            = 4
	clients         = 5
	backoff         = 20 * time.Millisecond // a client's pause after a refusal
)

// schedule is the nemesis's faults in turn; each targets the leader half
// of the time (by the seed), else a random node.
var schedule = []string{"kill", "pause", "kill", "pause", "kill-all", "kill", "pause"}

// buildNode builds cmd/node once for the whole package.
var buildNode = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: not in a module (%q)", gomod)
	}
	dir, err := os.MkdirTemp("", "troupe-chaos-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "node")
	c := exec.Command("go", "build", "-o", bin, "./cmd/node")
	c.Dir = filepath.Dir(gomod)
	if out, err := c.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/node in %s: %w\n%s", c.Dir, err, out)
	}
	return bin, nil
})

// proc is one `node run` process, restartable with the same flags.
type proc struct {
	name, http string
	args       []string
	log        string // the file its stderr goes to, across restarts
	mu         sync.Mutex
	cmd        *exec.Cmd
	exited     chan struct{} // closed when cmd has been waited for
	stopped    bool          // SIGSTOPped
	killed     bool          // SIGKILLed by the nemesis
}

type cluster struct {
	t     *testing.T
	bin   string
	procs []*proc
	hc    *http.Client
	mu    sync.Mutex
	died  []string // processes that exited without being killed
}

// startCluster starts n nodes as README.md's recipe does: a raft group of
// all of them, the raft elector, node-1 without --join and the others
// joining node-1's gossip address. Each node's gossip port is given with
// --gossip, as the free ports are not consecutive.
func startCluster(t *testing.T, bin string, n int) *cluster {
	c := &cluster{t: t, bin: bin, hc: &http.Client{Timeout: clientTimeout}}
	ports := actortest.FreePorts(t, 3*n)
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("node-%d", i+1))
	}
	dir := t.TempDir()
	for i, name := range names {
		bind, gossip, api := ports[3*i], ports[3*i+1], ports[3*i+2]
		p := &proc{name: name, http: fmt.Sprintf("http://127.0.0.1:%d", api), log: filepath.Join(dir, name+".log")}
		p.args = []string{"run", "--name", name,
			"--bind", fmt.Sprintf("127.0.0.1:%d", bind), "--gossip", fmt.Sprintf("127.0.0.1:%d", gossip),
			"--http", fmt.Sprintf("127.0.0.1:%d", api), "--data-dir", filepath.Join(dir, name),
			"--raft-peers", strings.Join(names, ","), "--elector", "raft", "--log-level", "warn"}
		if i > 0 {
			p.args = append(p.args, "--join", fmt.Sprintf("127.0.0.1:%d", ports[1]))
		}
		c.procs = append(c.procs, p)
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			c.kill(p)
		}
		if t.Failed() {
			for _, p := range c.procs {
				t.Logf("the end of %s's log:\n%s", p.name, tail(p.log, 4000))
			}
			c.mu.Lock()
			for _, d := range c.died {
				t.Log(d)
			}
			c.mu.Unlock()
		}
	})
	for _, p := range c.procs {
		c.start(p)
	}
	for _, p := range c.procs {
		c.waitReady(p)
	}
	return c
}

// tail is the last n bytes of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// start runs p in its own process group, appending its stderr to p.log.
func (c *cluster) start(p *proc) {
	c.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "--- %s: start %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.args, " "))
	cmd := exec.Command(c.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", p.name, err)
	}
	exited := make(chan struct{})
	started := time.Now()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		killed := p.killed
		p.mu.Unlock()
		if !killed {
			c.mu.Lock()
			c.died = append(c.died, fmt.Sprintf("%s (pid %d) exited by itself %v after its start: %v; the end of its log:\n%s",
				p.name, cmd.Process.Pid, time.Since(started).Round(time.Millisecond), err, tail(p.log, 3000)))
			c.mu.Unlock()
		}
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited, p.stopped, p.killed = cmd, exited, false, false
	p.mu.Unlock()
}

// signal sends sig to p's process group.
func (c *cluster) signal(p *proc, sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		c.t.Errorf("signal %v to %s: %v", sig, p.name, err)
	}
	switch sig {
	case syscall.SIGKILL:
		p.killed = true
	case syscall.SIGSTOP:
		p.stopped = true
	case syscall.SIGCONT:
		p.stopped = false
	}
}

// kill sends SIGKILL to p's process group and waits until it has exited.
func (c *cluster) kill(p *proc) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	c.signal(p, syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		c.t.Errorf("%s (pid %d) has not exited 30 s after SIGKILL", p.name, cmd.Process.Pid)
	}
	p.mu.Lock()
	p.cmd = nil
	p.mu.Unlock()
}

// ready reports whether p serves a linearizable read (a read index through
// the leader), and whether it has exited.
func (c *cluster) ready(p *proc) (bool, error) {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	select {
	case <-exited:
		return false, fmt.Errorf("%s exited (its log: %s)", p.name, p.log)
	default:
	}
	code, _, err := c.kv(http.MethodGet, p, "ready", "", "")
	return err == nil && (code == http.StatusOK || code == http.StatusNotFound), nil
}

func (c *cluster) waitReady(p *proc) time.Duration {
	c.t.Helper()
	t0 := time.Now()
	var exit error
	err := actortest.WaitFor(readyTimeout, func() bool {
		ok, err := c.ready(p)
		exit = err
		return ok || err != nil
	})
	if exit != nil {
		c.t.Fatal(exit)
	}
	if err != nil {
		c.t.Fatalf("%s does not serve a read: %v", p.name, err)
	}
	return time.Since(t0)
}

// readiness measures in the background how long nodes take to serve a
// read again after a fault, so that the nemesis goes on meanwhile.
type readiness struct {
	wg    sync.WaitGroup
	stop  atomic.Bool
	mu    sync.Mutex
	lines map[string]string // fault → how long until it served
}

// watch measures from since until p's current process serves a read, and
// records it under what.
func (c *cluster) watch(r *readiness, p *proc, what string, since time.Time) {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		line := fmt.Sprintf("%s not serving within %v", p.name, readyTimeout)
		_ = actortest.WaitFor(readyTimeout, func() bool {
			select {
			case <-exited:
				line = fmt.Sprintf("%s killed by the nemesis before it served (%v after)", p.name, time.Since(since).Round(time.Millisecond))
				return true
			default:
			}
			if r.stop.Load() {
				line = fmt.Sprintf("%s: the test ended before it served", p.name)
				return true
			}
			code, _, err := c.kv(http.MethodGet, p, "ready", "", "")
			if err == nil && (code == http.StatusOK || code == http.StatusNotFound) {
				line = fmt.Sprintf("%s serving %v after", p.name, time.Since(since).Round(time.Millisecond))
				return true
			}
			return false
		})
		r.mu.Lock()
		r.lines[what] = line
		r.mu.Unlock()
	}()
}

// leader is the node every node that answers names as the leader, or nil.
func (c *cluster) leader() *proc {
	var l struct{ Leader string }
	for _, p := range c.procs {
		p.mu.Lock()
		up := p.cmd != nil && !p.stopped
		p.mu.Unlock()
		if !up {
			continue
		}
		resp, err := c.hc.Get(p.http + "/v1/leader")
		if err != nil {
			continue
		}
		err = json.NewDecoder(resp.Body).Decode(&l)
		resp.Body.Close()
		if err == nil && l.Leader != "" {
			for _, q := range c.procs {
				if q.name == l.Leader {
					return q
				}
			}
		}
	}
	return nil
}

// kv does a key-value request on p; prev, if not "", makes a PUT a
// compare-and-set.
func (c *cluster) kv(method string, p *proc, key, value, prev string) (int, []byte, error) {
	u := p.http + "/v1/kv/" + key
	if prev != "" {
		u += "?prev=" + url.QueryEscape(prev)
	}
	req, err := http.NewRequest(method, u, strings.NewReader(value))
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// errorCode is the "code" of a JSON error body.
func errorCode(body []byte) string {
	var e struct{ Code string }
	_ = json.Unmarshal(body, &e)
	return e.Code
}

// refused reports whether err says the request never reached a server.
func refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// workload counts what the clients saw.
type workload struct {
	acked, unknown, notApplied, reads atomic.Int64
	fatal                             chan error
}

// client puts, compare-and-sets and gets random keys through random nodes
// until stop, recording every operation whose outcome is known and every
// write whose outcome is not (a pending operation, as Jepsen records it).
// A definite refusal (503, or a connection refused) is not recorded: it
// did not happen. A failed read is not recorded: it changed nothing.
func (c *cluster) client(id int, seed uint64, h *history, stop *atomic.Bool, w *workload) {
	rng := rand.New(rand.NewPCG(seed, uint64(id)))
	seen := map[string]string{} // key → the last value this client read or wrote
	for n := 0; !stop.Load(); n++ {
		p := c.procs[rng.IntN(len(c.procs))]
		key := fmt.Sprintf("k%d", rng.IntN(keys))
		call := time.Now()
		switch op := rng.IntN(10); {
		case op < 4: // get
			code, body, err := c.kv(http.MethodGet, p, key, "", "")
			in := consensustest.Input{Op: kv.OpGet, Key: key}
			switch {
			case err == nil && code == http.StatusOK:
				h.add(id, in, call, consensustest.Output{Found: true, Value: string(body)}, time.Now())
				seen[key] = string(body)
				w.reads.Add(1)
			case err == nil && code == http.StatusNotFound && errorCode(body) == "not_found":
				h.add(id, in, call, consensustest.Output{}, time.Now())
				w.reads.Add(1)
			case err == nil && code/100 == 4:
				w.fatal <- fmt.Errorf("get %s on %s: %d %s", key, p.name, code, body)
				return
			default:
				time.Sleep(backoff) // a node down, no quorum or a timeout: no busy loop
			}
		default: // put, or compare-and-set against the last value seen
			value := fmt.Sprintf("c%d-%d", id, n)
			in := consensustest.Input{Op: kv.OpPut, Key: key, Value: value}
			if prev, ok := seen[key]; ok && op >= 8 {
				in.Op, in.Prev = kv.OpCAS, prev
			}
			code, body, err := c.kv(http.MethodPut, p, key, value, in.Prev)
			switch {
			case err == nil && code == http.StatusOK:
				h.add(id, in, call, consensustest.Output{OK: true}, time.Now())
				seen[key] = value
				w.acked.Add(1)
			case err == nil && code == http.StatusConflict && in.Op == kv.OpCAS && errorCode(body) == "cas_failed":
				var f struct {
					Found   bool
					Current string
				}
				if err := json.Unmarshal(body, &f); err != nil {
					w.fatal <- fmt.Errorf("cas %s on %s: 409 body %s: %v", key, p.name, body, err)
					return
				}
				h.add(id, in, call, consensustest.Output{Found: f.Found, Value: f.Current}, time.Now())
				delete(seen, key)
				if f.Found {
					seen[key] = f.Current
				}
			case err == nil && code == http.StatusServiceUnavailable, err != nil && refused(err):
				w.notApplied.Add(1) // no_quorum, election, not_applied, or a node down: nothing was written
				time.Sleep(backoff) // the workload's pace: no busy loop against a node that is down
			case err == nil && code/100 == 4:
				w.fatal <- fmt.Errorf("put %s on %s: %d %s", key, p.name, code, body)
				return
			default: // 504 unknown, 500, a timeout, a broken connection: it may have applied
				in.Unknown = true
				h.add(id, in, call, consensustest.Output{}, time.Now())
				w.unknown.Add(1)
			}
		}
	}
}

func TestLoopbackChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the loopback chaos suite runs processes for about a minute; skipped under -short")
	}
	if actortest.RaceEnabled {
		t.Skip("the loopback chaos suite tests node processes; the race detector on the test adds nothing; it runs without -race")
	}
	bin, err := buildNode()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(bin)) })
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("nodes-%d", n), func(t *testing.T) { loopbackChaos(t, bin, n) })
	}
}

// loopbackChaos runs n nodes, five clients and a nemesis that kills a node
// with SIGKILL and restarts it, pauses one with SIGSTOP, and kills them all
// at once and restarts them; then it checks the history and the final
// reads.
func loopbackChaos(t *testing.T, bin string, n int) {
	seed := *loopbackSeed + uint64(n)
	t0 := time.Now()
	c := startCluster(t, bin, n)
	t.Logf("seed %d (-args -chaos.seed=%d): %d nodes ready in %v", seed, *loopbackSeed, n, time.Since(t0).Round(time.Millisecond))
	rng := rand.New(rand.NewPCG(seed, 0))
	h := &history{start: time.Now()}
	w := &workload{fatal: make(chan error, clients)}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for id := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); c.client(id, seed, h, &stop, w) }()
	}
	stopClients := sync.OnceFunc(func() { stop.Store(true); wg.Wait() })
	t.Cleanup(stopClients) // before the processes are killed: cleanups run last first

	// target is the leader half of the time, else a random node.
	target := func() (*proc, string) {
		if rng.IntN(2) == 0 {
			if l := c.leader(); l != nil {
				return l, " (the leader)"
			}
		}
		return c.procs[rng.IntN(len(c.procs))], ""
	}
	progress := func(what string) {
		before := w.acked.Load()
		actortest.Eventually(t, progressTimeout, "writes acknowledged after "+what, func() bool {
			select {
			case err := <-w.fatal:
				t.Fatal(err)
			default:
			}
			return w.acked.Load() >= before+5
		})
	}
	r := &readiness{lines: map[string]string{}}
	t.Cleanup(func() { r.stop.Store(true); r.wg.Wait() })
	var faults []string
	progress("the start")
	for i, fault := range schedule {
		ft := time.Now()
		what := fmt.Sprintf("%d", i)
		switch fault {
		case "kill":
			p, which := target()
			c.kill(p)
			time.Sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond) // the nemesis's schedule: down a while
			c.start(p)
			c.watch(r, p, what, time.Now())
			what = fmt.Sprintf("kill -9 %s%s, restarted", p.name, which)
		case "pause":
			p, which := target()
			c.signal(p, syscall.SIGSTOP)
			time.Sleep(time.Duration(2000+rng.IntN(2000)) * time.Millisecond) // paused a while
			c.signal(p, syscall.SIGCONT)
			c.watch(r, p, what, time.Now())
			what = fmt.Sprintf("SIGSTOP %s%s, SIGCONT", p.name, which)
		case "kill-all":
			for _, p := range c.procs {
				c.signal(p, syscall.SIGKILL) // all at once, then wait for each
			}
			for _, p := range c.procs {
				c.kill(p)
			}
			time.Sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond)
			for j, p := range c.procs {
				c.start(p)
				c.watch(r, p, fmt.Sprintf("%d.%d", i, j), time.Now())
			}
			what = "kill -9 of every node, restarted"
		}
		progress(what)
		faults = append(faults, fmt.Sprintf("%s; writes acknowledged again %v after the fault began", what, time.Since(ft).Round(time.Millisecond)))
	}
	stopClients()
	select {
	case err := <-w.fatal:
		t.Fatal(err)
	default:
	}

	// Every key read back through every node, after every client stopped.
	var finals []porcupine.Operation
	final := &history{start: h.start}
	for _, p := range c.procs {
		c.waitReady(p)
		for k := range keys {
			key := fmt.Sprintf("k%d", k)
			var code int
			var body []byte
			var call time.Time
			actortest.Eventually(t, readyTimeout, "a final read of "+key+" on "+p.name, func() bool {
				var err error
				call = time.Now()
				code, body, err = c.kv(http.MethodGet, p, key, "", "")
				return err == nil && (code == http.StatusOK || code == http.StatusNotFound)
			})
			out := consensustest.Output{Found: code == http.StatusOK, Value: string(body)}
			if !out.Found {
				out.Value = ""
			}
			in := consensustest.Input{Op: kv.OpGet, Key: key}
			h.add(clients, in, call, out, time.Now())
			final.add(clients, in, call, out, time.Now())
		}
	}
	finals = final.operations()
	checkLinearizable(t, h, 2*time.Minute)
	if lost := lostWrites(h.operations(), finals); len(lost) > 0 {
		t.Fatalf("acknowledged writes lost (seed %d):\n%s", seed, strings.Join(lost, "\n"))
	}
	c.mu.Lock()
	died := slices.Clone(c.died)
	c.mu.Unlock()
	if len(died) > 0 {
		t.Errorf("(seed %d) node processes exited that the nemesis did not kill:\n%s", seed, strings.Join(died, "\n"))
	}
	r.wg.Wait() // every node serves now: each watcher has seen it, or soon will
	var buf bytes.Buffer
	for i, f := range faults {
		fmt.Fprintf(&buf, "\n  %s", f)
		for j := range n {
			for _, what := range []string{fmt.Sprint(i), fmt.Sprintf("%d.%d", i, j)} {
				if l, ok := r.lines[what]; ok {
					fmt.Fprintf(&buf, "\n    %s", l)
					delete(r.lines, what)
				}
			}
		}
	}
	t.Logf("outcome (%d nodes, seed %d, %v): %d operations, %d writes acknowledged, %d of unknown outcome, %d refused as not applied, %d reads; linearizable, no acknowledged write lost; the nemesis:%s",
		n, seed, time.Since(t0).Round(time.Millisecond), len(h.operations()), w.acked.Load(), w.unknown.Load(), w.notApplied.Load(), w.reads.Load(), buf.String())
}

//go:build docker

package chaos

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/kv"
)

// project is the suite's compose project (TROUPE_CHAOS_PROJECT, default
// troupe-chaos): its containers and network are its own, beside any other
// stack on the host.
var project = cmp.Or(os.Getenv("TROUPE_CHAOS_PROJECT"), "troupe-chaos")

// services are compose.yaml's nodes; node-i's API is on host port
// <portBase>i.
var services = []string{"node-1", "node-2", "node-3", "node-4", "node-5"}

// portBase and subnet are the suite's TROUPE_PORT_BASE and TROUPE_SUBNET
// (compose.yaml, compose.subnet.yaml): from the environment, else free
// ones that start picks.
var portBase, subnet string

func apiURL(service string) string {
	return "http://127.0.0.1:" + portBase + strings.TrimPrefix(service, "node-")
}

// freePortBase is a TROUPE_PORT_BASE whose five ports nothing listens on:
// fixed ports, so that a restarted container keeps its API's.
func freePortBase(t *testing.T) string {
	for b := 1808; b < 6000; b++ {
		free := true
		for i := 1; i <= len(services) && free; i++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d%d", b, i))
			if err != nil {
				free = false
				continue
			}
			_ = ln.Close()
		}
		if free {
			return strconv.Itoa(b)
		}
	}
	t.Fatal("no free TROUPE_PORT_BASE from 1808 to 5999: set one")
	return ""
}

// freeSubnet is a /24 in 10.213.0.0/16 that no Docker network overlaps:
// the partition scenario reconnects a container with its own address,
// which Docker allows only on a network with a fixed subnet.
func freeSubnet(t *testing.T) string {
	out, err := cmd(time.Minute, ".", "docker", "network", "ls", "-q")
	if err != nil {
		t.Fatal(err)
	}
	var used []*net.IPNet
	if ids := strings.Fields(out); len(ids) > 0 {
		out, err = cmd(time.Minute, ".", "docker", append([]string{"network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"}, ids...)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range strings.Fields(out) {
			if _, n, err := net.ParseCIDR(f); err == nil {
				used = append(used, n)
			}
		}
	}
	for third := 7; third < 256; third++ {
		_, n, _ := net.ParseCIDR(fmt.Sprintf("10.213.%d.0/24", third))
		if !slices.ContainsFunc(used, func(u *net.IPNet) bool { return u.Contains(n.IP) || n.Contains(u.IP) }) {
			return n.String()
		}
	}
	t.Fatal("every /24 of 10.213.0.0/16 overlaps a Docker network: set TROUPE_SUBNET")
	return ""
}

// suite is the running cluster.
type suite struct {
	t       *testing.T
	root    string
	compose []string // the compose command: docker-compose, or docker compose
}

// cmd runs a command under a deadline and returns its combined output.
func cmd(timeout time.Duration, dir, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = dir
	// A CPU per container: the default quota (0.35) is for measuring
	// speedup, and under it a throttled node misses probes and heartbeats
	// on a busy host.
	c.Env = append(os.Environ(), "CGO_ENABLED=0", "TROUPE_CPUS="+cmp.Or(os.Getenv("TROUPE_CPUS"), "1"),
		"TROUPE_PORT_BASE="+portBase, "TROUPE_SUBNET="+subnet)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (s *suite) dc(args ...string) (string, error) {
	full := append(slices.Clone(s.compose[1:]), "-p", project,
		"-f", filepath.Join(s.root, "compose.yaml"), "-f", filepath.Join(s.root, "compose.subnet.yaml"))
	return cmd(5*time.Minute, s.root, s.compose[0], append(full, args...)...)
}

func (s *suite) docker(args ...string) string {
	s.t.Helper()
	out, err := cmd(2*time.Minute, s.root, "docker", args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// container is the id of a service's container.
func (s *suite) container(service string) string {
	s.t.Helper()
	out, err := s.dc("ps", "-q", service)
	if err != nil || strings.TrimSpace(out) == "" {
		s.t.Fatalf("no container for %s: %v %s", service, err, out)
	}
	return strings.TrimSpace(out)
}

// start builds the binary and the image and brings the cluster up.
func start(t *testing.T) *suite {
	if out, err := cmd(20*time.Second, ".", "docker", "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Skipf("chaos: skipped: no Docker daemon answers (docker info: %v)", strings.TrimSpace(out))
	}
	_, file, _, _ := runtime.Caller(0)
	s := &suite{t: t, root: filepath.Dir(filepath.Dir(file))}
	switch {
	case exec.Command("docker", "compose", "version").Run() == nil:
		s.compose = []string{"docker", "compose"}
	default:
		if _, err := exec.LookPath("docker-compose"); err != nil {
			t.Skip("chaos: skipped: neither docker compose nor docker-compose is installed")
		}
		s.compose = []string{"docker-compose"}
	}
	if portBase = os.Getenv("TROUPE_PORT_BASE"); portBase == "" {
		portBase = freePortBase(t)
	}
	if subnet = os.Getenv("TROUPE_SUBNET"); subnet == "" {
		subnet = freeSubnet(t)
	}
	t.Logf("compose project %s: subnet %s, node-i's API on 127.0.0.1:%si", project, subnet, portBase)
	t0 := time.Now()
	if _, err := cmd(10*time.Minute, s.root, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", "build/node", "./cmd/node"); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd(10*time.Minute, s.root, "docker", "build", "-q", "-t", "troupe-node", "."); err != nil {
		t.Fatal(err)
	}
	_, _ = s.dc("down", "-v", "--remove-orphans")
	if _, err := s.dc("up", "-d", "--force-recreate"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if os.Getenv("TROUPE_CHAOS_KEEP") != "" {
			t.Logf("cluster kept (TROUPE_CHAOS_KEEP): %s -p %s -f compose.yaml -f compose.subnet.yaml down -v", strings.Join(s.compose, " "), project)
			return
		}
		if t.Failed() {
			if logs, err := s.dc("logs", "--no-color", "--tail", "60"); err == nil {
				t.Logf("last container logs:\n%s", logs)
			}
		}
		if out, err := s.dc("down", "-v", "--remove-orphans"); err != nil {
			t.Logf("compose down: %v %s", err, out)
		}
	})
	s.healthy(services, 3*time.Minute)
	t.Logf("cluster up: image built and 5 nodes healthy in %v", time.Since(t0).Round(time.Millisecond))
	return s
}

// client of a node's API with a short timeout: a dead node must not stall
// the checks.
func client(service string) *api.Client {
	c := api.NewClient(apiURL(service))
	c.HTTP.Timeout = 3 * time.Second
	return c
}

type member struct{ Name, State string }

func members(service string) ([]member, error) {
	var ms []member
	_, err := client(service).Do(context.Background(), http.MethodGet, "/v1/members", nil, &ms)
	return ms, err
}

type leaderInfo struct {
	Leader string
	Term   uint64
}

func leader(service string) (leaderInfo, error) {
	var l leaderInfo
	_, err := client(service).Do(context.Background(), http.MethodGet, "/v1/leader", nil, &l)
	return l, err
}

// agreed reports whether every node in among sees every node in alive as
// alive and names the same leader, which it returns.
func agreed(among, alive []string) (string, bool) {
	lead := ""
	for _, n := range among {
		ms, err := members(n)
		if err != nil {
			return "", false
		}
		live := 0
		for _, m := range ms {
			if slices.Contains(alive, m.Name) && m.State == "alive" {
				live++
			}
		}
		l, err := leader(n)
		if err != nil || live != len(alive) || l.Leader == "" || (lead != "" && l.Leader != lead) {
			return "", false
		}
		lead = l.Leader
	}
	return lead, true
}

// healthy waits until every node in among sees all of them alive and the
// same leader, and returns the leader.
func (s *suite) healthy(among []string, timeout time.Duration) string {
	s.t.Helper()
	var lead string
	actortest.Eventually(s.t, timeout, fmt.Sprintf("%v alive in every view, with one leader", among), func() bool {
		var ok bool
		lead, ok = agreed(among, among)
		return ok
	})
	return lead
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	actortest.Eventually(t, timeout, what, cond)
	return time.Since(t0)
}

func except(all []string, out string) []string {
	return slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == out })
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

func TestChaos(t *testing.T) {
	s := start(t)
	nb := s.neighbour()
	t.Run("leader-killed-mid-job", s.leaderKilledMidJob)
	t.Run("leader-partitioned", s.leaderPartitioned)
	t.Run("rolling-restart", s.rollingRestart)
	t.Run("paused-node", s.pausedNode)
	t.Run("neighbour-stack-unharmed", nb.unharmed)
}

// neighbourProject is the compose project of a second, default stack that
// runs beside the suite's: Docker picks its subnet and host ports, as for
// an operator's `docker compose up -d` on the same host.
const neighbourProject = "troupe-chaos-neighbour"

// neighbourStack is that second stack.
type neighbourStack struct {
	s   *suite
	url string // node-1's API on the host
}

// ncmd runs compose for the neighbour, with the defaults of compose.yaml:
// none of the suite's fixed subnet or port base.
func (s *suite) ncmd(args ...string) (string, error) {
	full := append(slices.Clone(s.compose[1:]), "-p", neighbourProject, "-f", filepath.Join(s.root, "compose.yaml"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, s.compose[0], append(full, args...)...)
	c.Dir = s.root
	c.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "TROUPE_PORT_BASE=") || strings.HasPrefix(kv, "TROUPE_SUBNET=")
	})
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", s.compose[0], strings.Join(full, " "), err, out)
	}
	return string(out), nil
}

// neighbour brings up the default stack next to the suite's: two stacks on
// one Docker host must not collide on a subnet or a host port.
func (s *suite) neighbour() *neighbourStack {
	t := s.t
	_, _ = s.ncmd("down", "-v", "--remove-orphans")
	if _, err := s.ncmd("up", "-d", "--force-recreate"); err != nil {
		t.Fatalf("a default stack beside the suite's: %v", err)
	}
	t.Cleanup(func() {
		if out, err := s.ncmd("down", "-v", "--remove-orphans"); err != nil {
			t.Logf("neighbour compose down: %v %s", err, out)
		}
	})
	out, err := s.ncmd("port", "node-1", "8080")
	if err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("the neighbour's node-1 publishes no API port: %v %s", err, out)
	}
	nb := &neighbourStack{s: s, url: "http://" + strings.TrimSpace(out)}
	nb.wait(t)
	return nb
}

// wait waits until the neighbour's node-1 sees five members alive.
func (nb *neighbourStack) wait(t *testing.T) {
	t.Helper()
	c := api.NewClient(nb.url)
	c.HTTP.Timeout = 3 * time.Second
	var last string
	err := actortest.WaitFor(3*time.Minute, func() bool {
		var ms []member
		if _, err := c.Do(context.Background(), http.MethodGet, "/v1/members", nil, &ms); err != nil {
			last = err.Error()
			return false
		}
		alive := 0
		for _, m := range ms {
			if m.State == "alive" {
				alive++
			}
		}
		last = fmt.Sprintf("%d of %d members alive", alive, len(ms))
		return alive == 5 && len(ms) == 5
	})
	if err != nil {
		t.Fatalf("the neighbour stack (%s): %v; last: %s", nb.url, err, last)
	}
}

// unharmed: after every scenario of the suite, the neighbour still has
// exactly its five members, all alive.
func (nb *neighbourStack) unharmed(t *testing.T) {
	nb.wait(t)
	t.Logf("the neighbour stack at %s kept its 5 members alive beside the suite's", nb.url)
}

// primesBelow counts the primes below n with a sieve: the job's expected
// result, computed another way.
func primesBelow(n int) int {
	composite := make([]bool, n)
	count := 0
	for i := 2; i < n; i++ {
		if composite[i] {
			continue
		}
		count++
		for j := i * i; j < n; j += i {
			composite[j] = true
		}
	}
	return count
}

func (s *suite) leaderKilledMidJob(t *testing.T) {
	s.t = t
	lead := s.healthy(services, time.Minute)
	contact := except(services, lead)[0]
	script, err := os.ReadFile(filepath.Join(s.root, "examples/jobs/cpu.star"))
	if err != nil {
		t.Fatal(err)
	}
	const limit = 2_000_000
	var sub struct{ ID string }
	c := client(contact)
	if _, err := c.Do(context.Background(), http.MethodPost, "/v1/jobs", map[string]any{
		"runtime": "starlark", "script": string(script), "input": map[string]int{"limit": limit}, "parts": 80,
	}, &sub); err != nil {
		t.Fatal(err)
	}
	var st struct {
		State      string          `json:"state"`
		PartsTotal int             `json:"parts_total"`
		PartsDone  int             `json:"parts_done"`
		Result     json.RawMessage `json:"result"`
		Error      string          `json:"error"`
	}
	poll := func() bool {
		_, err := c.Do(context.Background(), http.MethodGet, "/v1/jobs/"+sub.ID, nil, &st)
		return err == nil
	}
	submitted := time.Now()
	waitFor(t, 2*time.Minute, "the job running with a part done", func() bool {
		return poll() && (st.PartsDone >= 1 || st.State != "running" && st.State != "pending")
	})
	if st.State != "running" {
		t.Fatalf("the job is %s before the leader could be killed: make it longer", st.State)
	}
	done := st.PartsDone
	victim := s.container(lead)
	s.docker("kill", victim)
	killed := time.Now()
	restarted := false
	defer func() { // the next scenarios need five nodes, whatever happens here
		if !restarted {
			_, _ = cmd(time.Minute, s.root, "docker", "start", victim)
		}
	}()
	var newLead string
	elected := waitFor(t, time.Minute, "a new leader", func() bool {
		l, err := leader(contact)
		newLead = l.Leader
		return err == nil && l.Leader != "" && l.Leader != lead
	})
	waitFor(t, 5*time.Minute, "the job to end", func() bool {
		return poll() && st.State != "running" && st.State != "pending"
	})
	finished := time.Since(killed)
	var res struct{ Primes int }
	if st.State != "succeeded" || json.Unmarshal(st.Result, &res) != nil || res.Primes != primesBelow(limit) {
		t.Fatalf("the job ended %s with %s (error %q), want succeeded with primes %d", st.State, st.Result, st.Error, primesBelow(limit))
	}
	t.Logf("outcome: job succeeded, primes=%d (checked); leader %s killed with %d/%d parts done; new leader %s after %d ms; job done %d ms after the kill (%d ms in all)",
		res.Primes, lead, done, st.PartsTotal, newLead, ms(elected), ms(finished), ms(time.Since(submitted)))
	s.docker("start", victim)
	restarted = true
	back := waitFor(t, 2*time.Minute, "the killed node back in every view", func() bool {
		_, ok := agreed(services, services)
		return ok
	})
	t.Logf("the restarted %s is back in every view after %d ms", lead, ms(back))
}

// network is the compose network and the container's address on it.
func (s *suite) network(id string) (name, ip string) {
	s.t.Helper()
	out := s.docker("inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}}{{end}}", id)
	f := strings.Fields(out)
	if len(f) != 2 {
		s.t.Fatalf("network of %s: %q", id, out)
	}
	return f[0], f[1]
}

func (s *suite) leaderPartitioned(t *testing.T) {
	s.t = t
	lead := s.healthy(services, 2*time.Minute)
	majority := except(services, lead)
	id := s.container(lead)
	net, ip := s.network(id)
	s.docker("network", "disconnect", net, id)
	cut := time.Now()
	reconnected := false
	defer func() {
		if !reconnected {
			_, _ = cmd(time.Minute, s.root, "docker", "network", "connect", "--ip", ip, net, id)
		}
	}()
	var newLead string
	elected := waitFor(t, time.Minute, "a leader in the majority", func() bool {
		l, err := leader(majority[0])
		newLead = l.Leader
		return err == nil && l.Leader != "" && l.Leader != lead
	})
	key := fmt.Sprintf("partition-%d", time.Now().UnixNano())
	var wrote time.Duration
	waitFor(t, time.Minute, "a write accepted by the majority", func() bool {
		code, _, err := kvPut(majority[1], key, "majority")
		wrote = time.Since(cut)
		return err == nil && code == http.StatusOK
	})
	// Hold the partition until the majority's failure detector has
	// noticed it, so that the heal is a real merge of two views.
	waitFor(t, time.Minute, "the majority sees "+lead+" gone", func() bool {
		ms, err := members(majority[0])
		if err != nil {
			return false
		}
		for _, m := range ms {
			if m.Name == lead {
				return m.State != "alive"
			}
		}
		return true
	})
	gone := time.Since(cut)
	s.docker("network", "connect", "--ip", ip, net, id)
	reconnected = true
	one := waitFor(t, 3*time.Minute, "one cluster again: 5 alive and one leader in every view", func() bool {
		_, ok := agreed(services, services)
		return ok
	})
	var v string
	waitFor(t, time.Minute, "the old leader reads the majority's write", func() bool {
		code, body, err := kvGet(lead, key)
		v = body
		return err == nil && code == http.StatusOK
	})
	if v != "majority" {
		t.Fatalf("the old leader reads %q for %s, want %q", v, key, "majority")
	}
	t.Logf("outcome: leader %s cut off; the majority elected %s after %d ms and accepted a write %d ms after the cut, and saw %s gone after %d ms; after reconnection one cluster again in %d ms, and %s reads the write",
		lead, newLead, ms(elected), ms(wrote), lead, ms(gone), ms(one), lead)
}

func kvDo(method, service, key, body string) (int, string, error) {
	req, err := http.NewRequest(method, apiURL(service)+"/v1/kv/"+key, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func kvPut(service, key, value string) (int, string, error) {
	return kvDo(http.MethodPut, service, key, value)
}
func kvGet(service, key string) (int, string, error) { return kvDo(http.MethodGet, service, key, "") }

// kvClient puts and gets through random nodes until stop, recording each
// operation whose outcome is known, and each put whose outcome is not.
func kvClient(id int, h *history, stop *atomic.Bool, acked *atomic.Int64, fatal chan<- error) {
	rng := rand.New(rand.NewPCG(uint64(id), 7))
	for n := 0; !stop.Load(); n++ {
		node := services[rng.IntN(len(services))]
		key := fmt.Sprintf("roll-%d", rng.IntN(5))
		call := time.Now()
		if rng.IntN(2) == 0 {
			value := fmt.Sprintf("c%d-%d", id, n)
			code, body, err := kvPut(node, key, value)
			in := consensustest.Input{Op: kv.OpPut, Key: key, Value: value}
			switch {
			case err == nil && code == http.StatusOK:
				acked.Add(1)
				h.add(id, in, call, consensustest.Output{}, time.Now())
			case err == nil && code == http.StatusServiceUnavailable:
				// no leader: nothing was applied
			case err == nil && code/100 == 4:
				fatal <- fmt.Errorf("put %s on %s: %d %s", key, node, code, body)
				return
			default: // a timeout, a refused or broken connection: it may have applied
				in.Unknown = true
				h.add(id, in, call, consensustest.Output{}, time.Now())
			}
		} else {
			code, body, err := kvGet(node, key)
			switch {
			case err == nil && code == http.StatusOK:
				h.add(id, consensustest.Input{Op: kv.OpGet, Key: key}, call, consensustest.Output{Value: body, Found: true}, time.Now())
			case err == nil && code == http.StatusNotFound && strings.Contains(body, "not_found"):
				h.add(id, consensustest.Input{Op: kv.OpGet, Key: key}, call, consensustest.Output{}, time.Now())
			}
		}
	}
}

func (s *suite) rollingRestart(t *testing.T) {
	s.t = t
	s.healthy(services, 2*time.Minute)
	h := &history{start: time.Now()}
	var stop atomic.Bool
	var acked atomic.Int64
	fatal := make(chan error, 8)
	var wg sync.WaitGroup
	for id := range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); kvClient(id, h, &stop, &acked, fatal) }()
	}
	var took []string
	for _, n := range services {
		before := acked.Load()
		t0 := time.Now()
		s.docker("restart", "-t", "10", s.container(n))
		waitFor(t, 3*time.Minute, n+" back: every node alive in every view, one leader", func() bool {
			_, ok := agreed(services, services)
			return ok
		})
		// Writes go on between restarts, not only around them.
		waitFor(t, time.Minute, "writes acknowledged after "+n+"'s restart", func() bool { return acked.Load() > before+10 })
		took = append(took, fmt.Sprintf("%s %d ms", n, ms(time.Since(t0))))
	}
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-fatal:
		t.Fatal(err)
	default:
	}
	// Every key read back, through every node, after the last write.
	for _, n := range services {
		for k := range 5 {
			key := fmt.Sprintf("roll-%d", k)
			call := time.Now()
			code, body, err := kvGet(n, key)
			if err != nil || code != http.StatusOK && code != http.StatusNotFound {
				t.Fatalf("final read of %s on %s: %d %s %v", key, n, code, body, err)
			}
			h.add(99, consensustest.Input{Op: kv.OpGet, Key: key}, call, consensustest.Output{Value: body, Found: code == http.StatusOK}, time.Now())
		}
	}
	checkLinearizable(t, h, 2*time.Minute)
	t.Logf("outcome: 5 nodes restarted one by one (%s); %d operations, %d acknowledged writes, history linearizable, every key read back on every node",
		strings.Join(took, ", "), len(h.ops), acked.Load())
}

func (s *suite) pausedNode(t *testing.T) {
	s.t = t
	lead := s.healthy(services, 2*time.Minute)
	victim := except(services, lead)[len(services)-2]
	others := except(services, victim)
	id := s.container(victim)
	s.docker("pause", id)
	paused := true
	defer func() {
		if paused {
			_, _ = cmd(time.Minute, s.root, "docker", "unpause", id)
		}
	}()
	seen := ""
	suspected := waitFor(t, time.Minute, victim+" suspected or failed", func() bool {
		for _, o := range others {
			ms, err := members(o)
			if err != nil {
				continue
			}
			for _, m := range ms {
				if m.Name == victim && m.State != "alive" {
					seen = o + " sees it " + m.State
					return true
				}
			}
		}
		return false
	})
	s.docker("unpause", id)
	paused = false
	back := waitFor(t, 2*time.Minute, victim+" alive in every view again", func() bool {
		_, ok := agreed(services, services)
		return ok
	})
	t.Logf("outcome: %s paused; %s after %d ms; unpaused, alive in every view again after %d ms", victim, seen, ms(suspected), ms(back))
}

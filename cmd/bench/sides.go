package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// kvClient is how the generator of `bench kv --vs-etcd` talks to one side:
// a put and a linearizable get of one key. Safe for concurrent use by
// every client goroutine of a run; each call may block up to ctx's end.
// The Troupe side's implementation (httpKV) is the node's HTTP JSON API;
// another transport (gRPC, HTTP/2) slots in behind the same interface.
type kvClient interface {
	Put(ctx context.Context, key string, value []byte) error
	Get(ctx context.Context, key string) error
	Close() error
}

// side is one of the two systems compared: three server processes on
// loopback with their data dirs. Used by the benchmark's main goroutine
// only.
type side interface {
	Name() string
	// Start starts every member and waits until they agree on a leader.
	Start(ctx context.Context) error
	// Leader is the member every running member names as the leader.
	Leader(ctx context.Context) (string, error)
	// Members are the members' names.
	Members() []string
	// Client is a client of the named members for conc goroutines.
	Client(ctx context.Context, members []string, conc int) (kvClient, error)
	// Kill ends a member with SIGKILL; Restart starts it again from its
	// data dir and waits until every member agrees on a leader.
	Kill(member string)
	Restart(ctx context.Context, member string) error
	// Stop kills every member and closes what the side holds.
	Stop()
}

var (
	_ side     = (*etcdSide)(nil)
	_ side     = (*troupeSide)(nil)
	_ kvClient = (*etcdKV)(nil)
	_ kvClient = (*httpKV)(nil)
)

// timers are the raft timers both sides run with: etcd's tick is its
// heartbeat interval, and both randomise the election timeout in
// [election, 2×election).
type timers struct {
	heartbeat, election time.Duration
}

// waitAgreed polls leader until it names one or ctx (bounded by timeout)
// ends.
func waitAgreed(ctx context.Context, timeout time.Duration, leader func(context.Context) (string, error)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		l, err := leader(ctx)
		if err == nil {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no leader agreed on within %v: %w", timeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ---- etcd ----

type etcdMember struct {
	proc
	client string // http://127.0.0.1:port
	admin  *clientv3.Client
}

type etcdSide struct {
	members []*etcdMember
}

func newEtcdSide(bin, dir string, t timers) (*etcdSide, error) {
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	s := &etcdSide{}
	var cluster []string
	for i := range 3 {
		name := fmt.Sprintf("etcd-%d", i+1)
		cluster = append(cluster, fmt.Sprintf("%s=http://127.0.0.1:%d", name, ports[2*i+1]))
	}
	for i := range 3 {
		name := fmt.Sprintf("etcd-%d", i+1)
		client, peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]), fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		m := &etcdMember{client: client, proc: proc{name: name, bin: bin, log: filepath.Join(dir, name+".log"), args: []string{
			"--name", name, "--data-dir", filepath.Join(dir, name),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(cluster, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "troupe-bench",
			"--heartbeat-interval", strconv.FormatInt(t.heartbeat.Milliseconds(), 10),
			"--election-timeout", strconv.FormatInt(t.election.Milliseconds(), 10),
			"--pre-vote=true", // as Troupe's raft (etcd checks quorum always, as Troupe does)
			"--logger", "zap", "--log-level", "warn",
		}}}
		s.members = append(s.members, m)
	}
	return s, nil
}

func (s *etcdSide) Name() string { return "etcd" }

func (s *etcdSide) Members() []string {
	var out []string
	for _, m := range s.members {
		out = append(out, m.name)
	}
	return out
}

func (s *etcdSide) member(name string) *etcdMember {
	for _, m := range s.members {
		if m.name == name {
			return m
		}
	}
	return nil
}

func newEtcdClient(ctx context.Context, endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Context: ctx, Logger: zap.NewNop()})
}

func (s *etcdSide) Start(ctx context.Context) error {
	for _, m := range s.members {
		if err := m.start(); err != nil {
			return err
		}
	}
	_, err := waitAgreed(ctx, 30*time.Second, s.Leader)
	return err
}

// Leader asks every running member for its status (one connection per
// member, kept): the leader is the member that names itself.
func (s *etcdSide) Leader(ctx context.Context) (string, error) {
	var lead uint64
	var name string
	for _, m := range s.members {
		if m.died() {
			return "", m.exitedError()
		}
		if !m.running() {
			continue
		}
		if m.admin == nil {
			c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.client}, DialTimeout: time.Second, Logger: zap.NewNop()})
			if err != nil {
				return "", err
			}
			m.admin = c
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := m.admin.Status(cctx, m.client)
		cancel()
		if err != nil {
			return "", fmt.Errorf("%s: %w", m.name, err)
		}
		if st.Leader == 0 || (lead != 0 && st.Leader != lead) {
			return "", fmt.Errorf("%s names leader %x, others %x", m.name, st.Leader, lead)
		}
		lead = st.Leader
		if st.Header.MemberId == st.Leader {
			name = m.name
		}
	}
	if name == "" {
		return "", fmt.Errorf("no running member is leader %x", lead)
	}
	return name, nil
}

// etcdKV spreads its calls over several clients (one gRPC connection
// each), as etcd's own benchmark tool does with --conns.
type etcdKV struct {
	clients []*clientv3.Client
	next    atomic.Uint64
}

// etcdStreamsPerConn is how many client goroutines share one gRPC
// connection: 1 connection at 1 goroutine, 2 at 16, 8 at 64.
const etcdStreamsPerConn = 8

func (s *etcdSide) Client(ctx context.Context, members []string, conc int) (kvClient, error) {
	var endpoints []string
	for _, n := range members {
		endpoints = append(endpoints, s.member(n).client)
	}
	kv := &etcdKV{}
	for range (conc + etcdStreamsPerConn - 1) / etcdStreamsPerConn {
		c, err := newEtcdClient(ctx, endpoints)
		if err != nil {
			_ = kv.Close()
			return nil, fmt.Errorf("etcd client of %v: %w", endpoints, err)
		}
		kv.clients = append(kv.clients, c)
	}
	return kv, nil
}

func (k *etcdKV) pick() *clientv3.Client { return k.clients[k.next.Add(1)%uint64(len(k.clients))] }

func (k *etcdKV) Put(ctx context.Context, key string, value []byte) error {
	_, err := k.pick().Put(ctx, key, string(value))
	return err
}

// Get is linearizable: etcd's default read (a ReadIndex round).
func (k *etcdKV) Get(ctx context.Context, key string) error {
	r, err := k.pick().Get(ctx, key)
	if err == nil && len(r.Kvs) != 1 {
		err = fmt.Errorf("etcd get %q: not found", key)
	}
	return err
}

func (k *etcdKV) Close() error {
	for _, c := range k.clients {
		_ = c.Close()
	}
	return nil
}

func (s *etcdSide) Kill(member string) {
	m := s.member(member)
	if m.admin != nil {
		_ = m.admin.Close()
		m.admin = nil
	}
	m.kill()
}

func (s *etcdSide) Restart(ctx context.Context, member string) error {
	if err := s.member(member).start(); err != nil {
		return err
	}
	_, err := waitAgreed(ctx, 30*time.Second, s.Leader)
	return err
}

func (s *etcdSide) Stop() {
	for _, m := range s.members {
		s.Kill(m.name)
	}
}

// ---- Troupe ----

type troupeMember struct {
	proc
	http string // http://127.0.0.1:port
}

type troupeSide struct {
	members []*troupeMember
	hc      *http.Client // status requests
	h2c     bool         // the load's client speaks HTTP/2 in clear text (--h2c)
}

// newTroupeSide is README.md's recipe for a 3-node raft group on loopback:
// node-1 starts the cluster, the others join its gossip address, each has
// a data dir (fsync on), the raft elector. The raft timers come through
// the environment (TROUPE_RAFT_*).
func newTroupeSide(bin, dir string, tick time.Duration, heartbeatTicks, electionTicks int) (*troupeSide, error) {
	ports, err := freePorts(9)
	if err != nil {
		return nil, err
	}
	s := &troupeSide{hc: &http.Client{Timeout: time.Second}}
	var names []string
	for i := range 3 {
		names = append(names, fmt.Sprintf("node-%d", i+1))
	}
	env := []string{"TROUPE_RAFT_TICK_INTERVAL=" + tick.String(),
		"TROUPE_RAFT_HEARTBEAT_TICKS=" + strconv.Itoa(heartbeatTicks), "TROUPE_RAFT_ELECTION_TICKS=" + strconv.Itoa(electionTicks)}
	for i, name := range names {
		bind, gossip, api := ports[3*i], ports[3*i+1], ports[3*i+2]
		m := &troupeMember{http: fmt.Sprintf("http://127.0.0.1:%d", api),
			proc: proc{name: name, bin: bin, env: env, log: filepath.Join(dir, name+".log"), args: []string{"run", "--name", name,
				"--bind", fmt.Sprintf("127.0.0.1:%d", bind), "--gossip", fmt.Sprintf("127.0.0.1:%d", gossip),
				"--http", fmt.Sprintf("127.0.0.1:%d", api), "--data-dir", filepath.Join(dir, name),
				"--raft-peers", strings.Join(names, ","), "--elector", "raft", "--log-level", "warn"}}}
		if i > 0 {
			m.args = append(m.args, "--join", fmt.Sprintf("127.0.0.1:%d", ports[1]))
		}
		s.members = append(s.members, m)
	}
	return s, nil
}

func (s *troupeSide) Name() string { return "troupe" }

func (s *troupeSide) Members() []string {
	var out []string
	for _, m := range s.members {
		out = append(out, m.name)
	}
	return out
}

func (s *troupeSide) member(name string) *troupeMember {
	for _, m := range s.members {
		if m.name == name {
			return m
		}
	}
	return nil
}

func (s *troupeSide) Start(ctx context.Context) error {
	for _, m := range s.members {
		if err := m.start(); err != nil {
			return err
		}
	}
	_, err := waitAgreed(ctx, 30*time.Second, s.Leader)
	return err
}

// Leader asks every running member's GET /v1/raft.
func (s *troupeSide) Leader(ctx context.Context) (string, error) {
	lead := ""
	for _, m := range s.members {
		if m.died() {
			return "", m.exitedError()
		}
		if !m.running() {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.http+"/v1/raft", nil)
		if err != nil {
			return "", err
		}
		resp, err := s.hc.Do(req)
		if err != nil {
			return "", fmt.Errorf("%s: %w", m.name, err)
		}
		var st struct {
			Leader string `json:"leader"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: GET /v1/raft: %s %v", m.name, resp.Status, err)
		}
		if st.Leader == "" || (lead != "" && st.Leader != lead) {
			return "", fmt.Errorf("%s names leader %q, others %q", m.name, st.Leader, lead)
		}
		lead = st.Leader
	}
	if m := s.member(lead); m == nil || !m.running() {
		return "", fmt.Errorf("the leader named, %q, is not a running member", lead)
	}
	return lead, nil
}

func (s *troupeSide) Client(ctx context.Context, members []string, conc int) (kvClient, error) {
	var bases []string
	for _, n := range members {
		bases = append(bases, s.member(n).http)
	}
	k := newHTTPKV(bases, conc, s.h2c)
	if s.h2c {
		if err := k.prime(ctx); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func (s *troupeSide) Kill(member string) { s.member(member).kill() }

func (s *troupeSide) Restart(ctx context.Context, member string) error {
	if err := s.member(member).start(); err != nil {
		return err
	}
	_, err := waitAgreed(ctx, 30*time.Second, s.Leader)
	return err
}

func (s *troupeSide) Stop() {
	for _, m := range s.members {
		m.kill()
	}
	s.hc.CloseIdleConnections()
}

// httpKV is a client of Troupe's HTTP JSON API (/v1/kv/{key}). Over
// HTTP/1.1 (the default): keep-alive, and a pool holding an idle
// connection per goroutine. With h2c: HTTP/2 in clear text (which `node
// run` serves beside HTTP/1.1), one connection per httpStreamsPerConn
// goroutines carrying their requests as concurrent streams, as etcdKV
// spreads its goroutines over gRPC connections. Calls go to its base URLs
// in turn, and to its connections in turn.
type httpKV struct {
	bases   []string
	clients []*http.Client
	next    atomic.Uint64 // the next base
	conn    atomic.Uint64 // the next connection
}

// httpStreamsPerConn is how many client goroutines share one HTTP/2
// connection (etcdStreamsPerConn: the same spread on both sides).
const httpStreamsPerConn = etcdStreamsPerConn

func newHTTPKV(bases []string, conc int, h2c bool) *httpKV {
	k := &httpKV{bases: bases}
	if !h2c {
		tr := &http.Transport{
			DialContext:         (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        0, // no limit beyond the per-host one
			MaxIdleConnsPerHost: conc + 1,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}
		k.clients = []*http.Client{{Transport: tr}}
		return k
	}
	for range (conc + httpStreamsPerConn - 1) / httpStreamsPerConn {
		tr := &http.Transport{
			DialContext:        (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
			IdleConnTimeout:    90 * time.Second,
			DisableCompression: true,
			Protocols:          new(http.Protocols),
		}
		tr.Protocols.SetUnencryptedHTTP2(true) // HTTP/2 with prior knowledge for http:// URLs
		k.clients = append(k.clients, &http.Client{Transport: tr})
	}
	return k
}

// prime makes one request on each client, so that each has its one
// HTTP/2 connection before the load starts: Go's transport dials a
// connection for every request that starts before it has one, which
// would give every goroutine a connection of its own.
func (k *httpKV) prime(ctx context.Context) error {
	for _, c := range k.clients {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.bases[0]+"/v1/raft", nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("HTTP/2 (h2c) to %s: %w", k.bases[0], err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	return nil
}

func (k *httpKV) url(key string) string {
	return k.bases[k.next.Add(1)%uint64(len(k.bases))] + "/v1/kv/" + key
}

func (k *httpKV) do(req *http.Request) error {
	resp, err := k.clients[k.conn.Add(1)%uint64(len(k.clients))].Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body) // so the connection is reused
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	return nil
}

func (k *httpKV) Put(ctx context.Context, key string, value []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, k.url(key), bytes.NewReader(value))
	if err != nil {
		return err
	}
	return k.do(req)
}

// Get is linearizable: GET /v1/kv/{key} is served after a ReadIndex round.
func (k *httpKV) Get(ctx context.Context, key string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url(key), nil)
	if err != nil {
		return err
	}
	return k.do(req)
}

func (k *httpKV) Close() error {
	for _, c := range k.clients {
		c.CloseIdleConnections()
	}
	return nil
}

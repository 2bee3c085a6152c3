package remote_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/security"
	"github.com/troupe-dev/troupe/transport"
	"github.com/troupe-dev/troupe/transport/remote"
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func mutual(t *testing.T, ca *security.CA, name string, log *logBuf) *security.MutualTLS {
	t.Helper()
	c, k, err := ca.Issue(name, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	m, err := security.NewMutualTLS(ca.CertPEM, c, k, zerolog.New(log))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Two nodes with certificates of the cluster's CA talk over mutual TLS; a
// node with a certificate of another CA reaches neither, and each side
// logs why.
func TestMutualTLSKeepsAForeignNodeOut(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	clusterCA, err := security.NewCA("cluster CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreignCA, err := security.NewCA("foreign CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	logs := map[string]*logBuf{"a": {}, "b": {}, "x": {}}
	nets := map[string]*remote.Network{}
	nodes := map[string]*node{}
	for _, name := range []string{"a", "b", "x"} {
		ca := clusterCA
		if name == "x" {
			ca = foreignCA
		}
		m := mutual(t, ca, name, logs[name])
		n, err := remote.New(remote.Config{TLS: m, Logger: zerolog.New(logs[name])})
		if err != nil {
			t.Fatal(err)
		}
		nets[name] = n
		nodes[name] = attach(t, n, name)
	}
	for from, n := range nets {
		for to, nd := range nodes {
			if from != to {
				if err := n.SetPeer(to, nd.ep.Address()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	send := func(from, to string, i uint64) {
		env := &messages.Envelope{From: from, To: to, Protocol: "p"}
		_ = transport.MarshalPayload(env, &messages.Ping{N: i})
		if _, err := nodes[from].ep.Send(env); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		send("a", "b", uint64(i))
		send("b", "a", uint64(i))
	}
	actortest.Eventually(t, 10*time.Second, "10 envelopes each way between a and b", func() bool {
		return nodes["a"].count() == 10 && nodes["b"].count() == 10
	})

	send("x", "a", 1)
	actortest.Eventually(t, 10*time.Second, "x says why it refuses a", func() bool {
		return strings.Contains(logs["x"].String(), "the server's certificate is not signed by the cluster's CA")
	})
	actortest.Eventually(t, 10*time.Second, "a logs the failed handshake from x", func() bool {
		return strings.Contains(logs["a"].String(), "refused a connection: the TLS handshake failed")
	})
	send("a", "x", 1)
	actortest.Eventually(t, 10*time.Second, "a says why it refuses x", func() bool {
		l := logs["a"].String()
		return strings.Contains(l, "the server's certificate is not signed by the cluster's CA") && strings.Contains(l, `"issuer":"foreign CA"`) &&
			strings.Contains(l, `"peer":"`+nodes["x"].ep.Address()+`"`)
	})
	if nodes["a"].count() != 10 || nodes["x"].count() != 0 {
		t.Fatalf("a got %d envelopes (want 10, none from x), x got %d (want 0)", nodes["a"].count(), nodes["x"].count())
	}
}

// TestNodeTLSGivesEachNodeItsCertificate: nodes attached to one Network
// with NodeTLS each present a certificate naming them, so they hear each
// other; a NodeTLS that fails, or that gives a node another's certificate,
// keeps the node from attaching.
func TestNodeTLSGivesEachNodeItsCertificate(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	ca, err := security.NewCA("cluster CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var log logBuf
	if _, err := remote.New(remote.Config{TLS: mutual(t, ca, "a", &log), NodeTLS: func(string) (*security.MutualTLS, error) { return nil, nil }}); err == nil {
		t.Error("New accepted both TLS and NodeTLS")
	}
	net, err := remote.New(remote.Config{Logger: zerolog.New(&log), NodeTLS: func(node string) (*security.MutualTLS, error) {
		switch node {
		case "bad":
			return nil, errors.New("no certificate for bad")
		case "liar":
			return mutual(t, ca, "a", &log), nil
		}
		return mutual(t, ca, node, &log), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	a, b := attach(t, net, "a"), attach(t, net, "b")
	for _, name := range []string{"bad", "liar"} {
		if _, err := net.Attach(transport.Attachment{Node: name, System: actor.NewActorSystem(), DeliverBatch: ignore}); err == nil {
			t.Errorf("node %s attached", name)
		}
	}
	for i := range 5 {
		for _, p := range []struct {
			from *node
			name string
			to   string
		}{{a, "a", "b"}, {b, "b", "a"}} {
			env := &messages.Envelope{From: p.name, To: p.to, Protocol: "p"}
			_ = transport.MarshalPayload(env, &messages.Ping{N: uint64(i)})
			if _, err := p.from.ep.Send(env); err != nil {
				t.Fatal(err)
			}
		}
	}
	actortest.Eventually(t, 10*time.Second, "5 envelopes each way", func() bool { return a.count() == 5 && b.count() == 5 })
	if a.refusals()+b.refusals() != 0 {
		t.Errorf("%d refusals; want none:\n%s", a.refusals()+b.refusals(), log.String())
	}
}

// TestDialledServerMustBeTheNode: a member of the cluster listening at the
// address the directory gives another node does not receive that node's
// messages: the dialler refuses a server whose certificate names a node
// the directory has elsewhere, and says so.
func TestDialledServerMustBeTheNode(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	ca, err := security.NewCA("cluster CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var logA, logM logBuf
	netA, err := remote.New(remote.Config{TLS: mutual(t, ca, "a", &logA), Logger: zerolog.New(&logA)})
	if err != nil {
		t.Fatal(err)
	}
	netM, err := remote.New(remote.Config{TLS: mutual(t, ca, "m", &logM), Logger: zerolog.New(&logM)})
	if err != nil {
		t.Fatal(err)
	}
	a, m := attach(t, netA, "a"), attach(t, netM, "m")
	if err := netA.SetPeer("b", m.ep.Address()); err != nil { // b's address, as a stale or forged directory has it
		t.Fatal(err)
	}
	send := func(to string, n uint64) {
		env := &messages.Envelope{From: "a", To: to, Protocol: "p"}
		_ = transport.MarshalPayload(env, &messages.Ping{N: n})
		if _, err := a.ep.Send(env); err != nil {
			t.Fatal(err)
		}
	}
	send("b", 1)
	actortest.Eventually(t, 10*time.Second, "a refuses m's server for b's address", func() bool {
		l := logA.String()
		return strings.Contains(l, "refused a server: its certificate names a node the directory has elsewhere") && strings.Contains(l, `"certificate":"m"`)
	})
	if m.count() != 0 || m.refusals() != 0 {
		t.Fatalf("m received %d envelopes and refused %d meant for b; want none reaching it", m.count(), m.refusals())
	}
	if err := netA.SetPeer("m", m.ep.Address()); err != nil {
		t.Fatal(err)
	}
	n := uint64(0)
	actortest.Eventually(t, 10*time.Second, "a reaches m at its own address", func() bool {
		n++
		send("m", n) // again until one arrives: protoactor drops what it queued for the refused connection
		return m.count() > 0
	})
}

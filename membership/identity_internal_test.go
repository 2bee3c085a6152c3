package membership

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/security"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	actortest.Eventually(t, 10*time.Second, what, cond)
}

// TestTLSMemberSpeaksOnlyForItsCertificate: with TLS a member is who its
// certificate names, where memberlist lets it be checked. A node does not
// start with another's certificate; a seed refuses the state of a node
// joining under another name than its certificate's (through memberlist's
// own goroutines: this fails if the stream's certificate no longer reaches
// the merge); a node refuses to sync with it; and an alive message on a
// TLS stream for the peer's own address must carry its certificate's name.
func TestTLSMemberSpeaksOnlyForItsCertificate(t *testing.T) {
	ca, err := security.NewCA("cluster CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var log lockedBuffer
	cfg := func(name, certFor string, seeds ...string) Config {
		c, k, err := ca.Issue(certFor, nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		m, err := security.NewMutualTLS(ca.CertPEM, c, k, zerolog.New(&log))
		if err != nil {
			t.Fatal(err)
		}
		return Config{Name: actors.NodeName(name), Preset: PresetLocal, TLS: m, Seeds: seeds, Logger: zerolog.New(&log), Retry: JoinRetry{Timeout: 2 * time.Second}}
	}
	if _, err := New(cfg("node-2", "node-1")); !errors.Is(err, ErrCertificate) || !strings.Contains(err.Error(), `issued for node "node-1"`) {
		t.Fatalf("New with another node's certificate: %v", err)
	}

	n1, err := New(cfg("node-1", "node-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer n1.Shutdown()
	// An impostor: a certificate for node-9, joining as node-3.
	imp, err := newMembership(cfg("node-3", "node-9", n1.GossipAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Shutdown()
	_ = imp.Join(context.Background()) // it hears the seed; the seed does not take its state
	waitFor(t, "node-1 refuses the impostor's state", func() bool { return n1.Stats().RefusedPeers >= 1 })
	if l := log.String(); !strings.Contains(l, `certificate names node \"node-9\" sent a state that does not list \"node-9\"`) {
		t.Errorf("node-1's log does not say why it refused the state:\n%s", l)
	}
	before := n1.Stats().RefusedPeers
	if _, err := n1.ml.Join([]string{imp.GossipAddr()}); err == nil {
		t.Error("node-1 synced its state with the impostor")
	}
	if n1.Stats().RefusedPeers <= before {
		t.Error("node-1's sync with the impostor was not refused by a certificate check")
	}

	// The alive rule, on this goroutine as if it served a stream of node-2
	// at 127.0.0.1:7001.
	d := (*delegate)(n1)
	alive := func(name string, port uint16) error {
		return d.NotifyAlive(&memberlist.Node{Name: name, Addr: net.IPv4(127, 0, 0, 1), Port: port})
	}
	if err := alive("node-5", 7001); err != nil {
		t.Fatalf("no stream, no check: %v", err)
	}
	g, peer := goroutineID(), &streamPeer{name: "node-2"}
	n1.tr.ids.add(g, peer)
	if err := d.NotifyMerge([]*memberlist.Node{{Name: "node-5", Addr: net.IPv4(127, 0, 0, 1), Port: 7001, State: memberlist.StateAlive}}); !errors.Is(err, security.ErrPeerRefused) {
		t.Errorf("a join state without the certificate's node: %v", err)
	}
	if err := d.NotifyMerge([]*memberlist.Node{{Name: "node-2", Addr: net.IPv4(127, 0, 0, 1), Port: 7001, State: memberlist.StateAlive}}); err != nil {
		t.Errorf("a join state listing the certificate's node: %v", err)
	}
	if err := alive("node-5", 7001); !errors.Is(err, security.ErrPeerRefused) {
		t.Errorf("an alive message for node-2's own address as node-5: %v", err)
	}
	if err := alive("node-5", 7002); err != nil {
		t.Errorf("node-2 relaying node-5 at another address: %v", err)
	}
	if err := alive("node-2", 7001); err != nil {
		t.Errorf("node-2 speaking for itself: %v", err)
	}
	n1.tr.ids.remove(g, peer)
}

package membership_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/membership"
	"github.com/troupe-dev/troupe/security"
)

func mutualTLS(t *testing.T, ca *security.CA, name string, log *syncBuffer) *security.MutualTLS {
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

// With TLS, nodes of the cluster's CA join each other; a node with a
// certificate of another CA cannot join: Join fails at once with
// ErrCertificate, its log says why, and the cluster's view is unchanged.
func TestTLSKeepsAForeignNodeOut(t *testing.T) {
	clusterCA, err := security.NewCA("cluster CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreignCA, err := security.NewCA("foreign CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var logA syncBuffer
	nodes := startCluster(t, 2, func(c *membership.Config) {
		c.TLS = mutualTLS(t, clusterCA, string(c.Name), &logA)
		c.Logger = zerolog.New(&logA)
	})
	allSeeAll(t, nodes, names(2))

	var logX syncBuffer
	start := time.Now()
	_, err = startWith(t, membership.Config{Name: "node-x", Seeds: []string{nodes[0].GossipAddr()},
		TLS: mutualTLS(t, foreignCA, "node-x", &logX), Logger: zerolog.New(&logX)})
	if !errors.Is(err, membership.ErrCertificate) {
		t.Fatalf("a node of another CA joined or failed otherwise: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second { // retrying, the join would give up after 30 s
		t.Errorf("the refused join took %v; it must fail at once, not retry", took)
	}
	if l := logX.String(); !strings.Contains(l, "cannot join: TLS refused") || !strings.Contains(l, "is not signed by the cluster's CA") {
		t.Errorf("node-x's log does not say why it cannot join:\n%s", l)
	}
	if got := nodes[0].View().LiveNames(); !slices.Equal(got, names(2)) {
		t.Errorf("node-1's view after the refused join: %v", got)
	}
	// Without TLS at all, the join fails too (the seed hangs up: to the
	// node it looks like a seed that is not there).
	_, err = startWith(t, membership.Config{Name: "node-y", Seeds: []string{nodes[0].GossipAddr()}})
	if !errors.Is(err, membership.ErrNoSeed) {
		t.Fatalf("a node without TLS: %v, want ErrNoSeed", err)
	}
	if l := logA.String(); !strings.Contains(l, "does not look like a TLS handshake") {
		t.Errorf("the seed's log does not show the plaintext attempt:\n%s", l)
	}
}

// startWith is start with a short retry budget: a join that fails with
// a retryable error gives up soon.
func startWith(t *testing.T, cfg membership.Config) (*testNode, error) {
	t.Helper()
	cfg.Retry.Timeout = time.Second
	n, err := start(t, cfg)
	if err == nil {
		t.Cleanup(func() { _ = n.Shutdown() })
	}
	return n, err
}

package security

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// ErrPeerRefused: the other side of a connection presented no certificate,
// or one the cluster's CA did not sign (or that expired, or is not for
// that use). The connection is closed.
var ErrPeerRefused = errors.New("security: peer certificate refused")

// Files names the PEM files of a node's mutual TLS: the cluster's CA
// certificate, and the node's certificate and private key.
type Files struct {
	CA, Cert, Key string
}

// MutualTLS is a node's mutual TLS between nodes: it presents the node's
// certificate on both sides of a connection and accepts a peer only with a
// certificate the cluster's CA signed. Every refusal is logged with the
// peer's address and why (no certificate, an unknown CA, expired, wrong
// usage), and fails the handshake.
//
// Host names are not checked: a node is identified by its name, not by the
// address it is dialled at. A certificate names the node it was issued
// for in its subject's common name ([NodeName]); the handshake accepts any
// certificate of the cluster's CA, and the node port then accepts from a
// peer only what it sends as that node (package transport/remote).
type MutualTLS struct {
	roots *x509.CertPool
	cert  tls.Certificate
	log   *LogLimiter
	now   func() time.Time
}

// NodeName is the name of the node a certificate was issued for: its
// subject's common name, as [CA.Issue] and `node certs` write it. The DNS
// names and IP addresses of a certificate are not names of nodes: they may
// be shared by every node's certificate (`node certs --hosts`).
func NodeName(cert *x509.Certificate) string { return cert.Subject.CommonName }

// LoadMutualTLS reads the files (PEM) and checks that the node's
// certificate matches its key and is signed by the CA. Refusals are logged
// to log, at most 10 a kind per 10 seconds, then counted ([LogLimiter]).
func LoadMutualTLS(f Files, log zerolog.Logger) (*MutualTLS, error) {
	ca, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("security: the CA certificate: %w", err)
	}
	cert, err := os.ReadFile(f.Cert)
	if err != nil {
		return nil, fmt.Errorf("security: the node's certificate: %w", err)
	}
	key, err := os.ReadFile(f.Key)
	if err != nil {
		return nil, fmt.Errorf("security: the node's key: %w", err)
	}
	m, err := NewMutualTLS(ca, cert, key, log)
	if err != nil {
		return nil, fmt.Errorf("%w (files: ca %s, cert %s, key %s)", err, f.CA, f.Cert, f.Key)
	}
	return m, nil
}

// NewMutualTLS is LoadMutualTLS from PEM bytes.
func NewMutualTLS(caPEM, certPEM, keyPEM []byte, log zerolog.Logger) (*MutualTLS, error) {
	cas, err := parseCerts("the CA file", caPEM)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("security: the node's certificate and key: %w", err)
	}
	leaf := pair.Leaf
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	for _, use := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{use}}); err != nil {
			return nil, fmt.Errorf("security: the node's certificate %q %s", leaf.Subject.CommonName, reason(err))
		}
	}
	m := &MutualTLS{roots: roots, cert: pair, now: time.Now,
		log: NewLogLimiter(log.With().Str("component", "tls").Logger(), 10, 10*time.Second)}
	if left := time.Until(leaf.NotAfter); left < 30*24*time.Hour {
		log.Warn().Time("not_after", leaf.NotAfter).Str("subject", leaf.Subject.CommonName).Msg("the node's certificate expires within 30 days")
	}
	return m, nil
}

// Subject is the common name of the node's certificate: the name of the
// node it was issued for ([NodeName]).
func (m *MutualTLS) Subject() string { return NodeName(m.cert.Leaf) }

// Server is the configuration of a listener: it asks every client for a
// certificate and refuses those the CA did not sign. nextProtos are the
// ALPN protocols it offers ("h2" for gRPC).
func (m *MutualTLS) Server(nextProtos ...string) *tls.Config {
	base := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{m.cert},
		// Requested, not required: the verification below refuses a
		// client without one, and says so in the log.
		ClientAuth: tls.RequestClientCert,
		NextProtos: nextProtos,
	}
	cfg := base.Clone()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		peer := "an unknown address"
		if hello.Conn != nil {
			peer = hello.Conn.RemoteAddr().String()
		}
		c := base.Clone()
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			return m.verify("client", peer, cs, x509.ExtKeyUsageClientAuth)
		}
		return c, nil
	}
	return cfg
}

// Client is the configuration of a dialler: it presents the node's
// certificate and refuses a server whose certificate the CA did not sign.
// peer is the address dialled, for the log ("" when unknown: TLS knows
// only a host name, and none for an IP address).
func (m *MutualTLS) Client(peer string, nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{m.cert},
		NextProtos:   nextProtos,
		// The chain is checked against the cluster's CA below, without
		// the host name (see MutualTLS).
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return m.verify("server", cmp.Or(peer, cs.ServerName), cs, x509.ExtKeyUsageServerAuth)
		},
	}
}

// verify checks a peer's chain against the CA and logs a refusal.
func (m *MutualTLS) verify(side, peer string, cs tls.ConnectionState, use x509.ExtKeyUsage) error {
	if peer == "" {
		peer = "(no name)"
	}
	if len(cs.PeerCertificates) == 0 {
		err := fmt.Errorf("%w: the %s at %s presented no certificate; every node needs one signed by the cluster's CA", ErrPeerRefused, side, peer)
		kind := "refused a TLS connection: the " + side + " presented no certificate"
		m.log.Warn(kind).Str("peer", peer).Msg(kind)
		return err
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: m.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{use}, CurrentTime: m.now()})
	if err == nil {
		return nil
	}
	why := reason(err)
	kind := "refused a TLS connection: the " + side + "'s certificate " + why
	if strings.HasPrefix(why, "is invalid:") { // x509's words, which may quote the certificate: one kind
		kind = "refused a TLS connection: the " + side + "'s certificate is invalid"
	}
	m.log.Warn(kind).Str("peer", peer).Str("subject", leaf.Subject.CommonName).Str("issuer", leaf.Issuer.CommonName).
		Str("detail", err.Error()).Msgf("refused a TLS connection: the %s's certificate %s", side, why)
	return fmt.Errorf("%w: the %s at %s: certificate %q (issuer %q) %s", ErrPeerRefused, side, peer, leaf.Subject.CommonName, leaf.Issuer.CommonName, why)
}

// reason says in words why x509 refused a chain.
func reason(err error) string {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return "is not signed by the cluster's CA"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "has expired or is not valid yet"
	case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
		return "is not for this use (it needs server and client authentication)"
	}
	return "is invalid: " + err.Error()
}

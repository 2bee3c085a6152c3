package security

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/troupe-dev/troupe/transport"
)

// CA is a certificate authority that issues node certificates: the
// development CA of `node certs`. Production clusters may use any CA whose
// certificates carry the usages Issue sets.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA makes a self-signed CA named name (ECDSA P-256), valid for validFor.
func NewCA(name string, validFor time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Troupe"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("security: creating the CA certificate: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyPEM, err := keyToPEM(key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: certToPEM(der), KeyPEM: keyPEM}, nil
}

// LoadCA reads a CA's certificate and key (PEM), to issue more node
// certificates with it.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("security: CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("security: CA key: %w", err)
	}
	certs, err := parseCerts(certFile, certPEM)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, fmt.Errorf("security: %s holds no PEM block; want the CA's private key", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("security: %s: %w", keyFile, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("security: %s holds a %T; want an ECDSA key (as NewCA makes)", keyFile, k)
	}
	if !certs[0].IsCA {
		return nil, fmt.Errorf("security: %s is not a CA certificate", certFile)
	}
	return &CA{Cert: certs[0], Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// Issue makes a certificate and key for node, signed by the CA, for both
// sides of a connection (server and client authentication), valid for
// validFor. Its subject's common name is the node's name: the certificate
// is that node's identity ([NodeName]), and peers accept from it only
// what it sends as that node. Its names (SANs) are the node's name,
// localhost, 127.0.0.1, ::1 and hosts (names or IP addresses), for
// clients that check the name of the HTTP API; they identify no node.
func (ca *CA) Issue(node string, hosts []string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	if err := transport.ValidateName("node", node); err != nil {
		return nil, nil, fmt.Errorf("security: issuing a certificate: %w (the certificate names the node as it sends, node.name in its configuration)", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: node, Organization: []string{"Troupe"}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{node, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("security: issuing %s's certificate: %w", node, err)
	}
	keyPEM, err = keyToPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return certToPEM(der), keyPEM, nil
}

// WriteDevCerts makes a development CA in dir (ca.crt, ca.key) — or reuses
// the one there — and a certificate and key for each node
// (<node>.crt, <node>.key), each naming its node ([CA.Issue]) and with the
// extra names in hosts. Keys are written readable by the owner only. It
// checks every name before it writes anything, and returns the files
// written.
func WriteDevCerts(dir string, nodes, hosts []string, validFor time.Duration) ([]string, error) {
	if len(nodes) == 0 {
		return nil, errors.New("security: no node names; give at least one")
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		if err := transport.ValidateName("node", n); err != nil {
			return nil, fmt.Errorf("security: %w; each certificate names one node, as node.name in its configuration", err)
		}
		if seen[n] {
			return nil, fmt.Errorf("security: node %q is named twice; each node needs a certificate of its own", n)
		}
		seen[n] = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	caCert, caKey := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	var written []string
	ca, err := LoadCA(caCert, caKey)
	if errors.Is(err, os.ErrNotExist) {
		if ca, err = NewCA("Troupe development CA", validFor); err != nil {
			return nil, err
		}
		if err := os.WriteFile(caCert, ca.CertPEM, 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(caKey, ca.KeyPEM, 0o600); err != nil {
			return nil, err
		}
		written = append(written, caCert, caKey)
	} else if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		c, k, err := ca.Issue(n, hosts, validFor)
		if err != nil {
			return written, err
		}
		cf, kf := filepath.Join(dir, n+".crt"), filepath.Join(dir, n+".key")
		if err := os.WriteFile(cf, c, 0o644); err != nil {
			return written, err
		}
		if err := os.WriteFile(kf, k, 0o600); err != nil {
			return written, err
		}
		written = append(written, cf, kf)
	}
	return written, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

func certToPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyToPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseCerts reads every certificate of a PEM file.
func parseCerts(name string, data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("security: %s: %w", name, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("security: %s holds no PEM certificate", name)
	}
	return out, nil
}

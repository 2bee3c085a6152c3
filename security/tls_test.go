package security_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/security"
)

// logBuf collects log lines written from several goroutines.
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

func node(t *testing.T, ca *security.CA, name string, log io.Writer) *security.MutualTLS {
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

func newCA(t *testing.T, name string) *security.CA {
	t.Helper()
	ca, err := security.NewCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// exchange runs one round trip over TLS on loopback: the client writes a
// byte, the server echoes it. It returns the client's and the server's
// errors.
func exchange(t *testing.T, server, client *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil {
			done <- err
			return
		}
		_, err = c.Write(b)
		done <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err == nil {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err = c.Write([]byte{7}); err == nil {
			b := make([]byte, 1)
			_, err = io.ReadFull(c, b)
		}
	}
	return err, <-done
}

func TestMutualTLS(t *testing.T) {
	cluster, foreign := newCA(t, "cluster CA"), newCA(t, "foreign CA")
	var logA, logX logBuf
	a := node(t, cluster, "a", &logA)
	b := node(t, cluster, "b", io.Discard)
	x := node(t, foreign, "x", &logX)

	if cerr, serr := exchange(t, a.Server(), b.Client("")); cerr != nil || serr != nil {
		t.Fatalf("two nodes of one CA: client %v, server %v", cerr, serr)
	}

	// A node of another CA dials a: a refuses its certificate and logs why
	// (and x refuses a's too).
	cerr, serr := exchange(t, a.Server(), x.Client(""))
	if cerr == nil || serr == nil {
		t.Fatalf("a foreign node was let in: client %v, server %v", cerr, serr)
	}
	if !errors.Is(cerr, security.ErrPeerRefused) || !strings.Contains(cerr.Error(), "is not signed by the cluster's CA") {
		t.Errorf("the foreign client's error: %v", cerr)
	}
	if l := logX.String(); !strings.Contains(l, `"subject":"a"`) || !strings.Contains(l, "refused a TLS connection: the server's certificate is not signed by the cluster's CA") {
		t.Errorf("the foreign node's log does not say why: %s", l)
	}

	// a dials the foreign node's server: a refuses the server.
	logA.mu.Lock()
	logA.b.Reset()
	logA.mu.Unlock()
	cerr, _ = exchange(t, x.Server(), a.Client(""))
	if !errors.Is(cerr, security.ErrPeerRefused) {
		t.Errorf("dialling a foreign server: %v", cerr)
	}
	if l := logA.String(); !strings.Contains(l, `"subject":"x"`) || !strings.Contains(l, `"issuer":"foreign CA"`) {
		t.Errorf("a's log does not name the foreign certificate: %s", l)
	}

	// A foreign client against a's server: a's log names its address.
	logA.mu.Lock()
	logA.b.Reset()
	logA.mu.Unlock()
	bare := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13} // no certificate at all
	_, serr = exchange(t, a.Server(), bare)
	if !errors.Is(serr, security.ErrPeerRefused) || !strings.Contains(logA.String(), "the client presented no certificate") {
		t.Errorf("a client without a certificate: server %v, log %s", serr, logA.String())
	}
	// A client that presents a foreign certificate (and does not check
	// the server's, so that its certificate reaches a): a's log names its
	// address and says why.
	logA.mu.Lock()
	logA.b.Reset()
	logA.mu.Unlock()
	xc, xk, err := foreign.Issue("x", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(xc, xk)
	if err != nil {
		t.Fatal(err)
	}
	pushy := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}}
	_, serr = exchange(t, a.Server(), pushy)
	if !errors.Is(serr, security.ErrPeerRefused) {
		t.Errorf("a foreign client certificate: server %v", serr)
	}
	if l := logA.String(); !strings.Contains(l, "refused a TLS connection: the client's certificate is not signed by the cluster's CA") || !strings.Contains(l, `"peer":"127.0.0.1:`) {
		t.Errorf("a's log of a foreign client: %s", l)
	}
}

func TestLoadRefusesAMismatchedSetup(t *testing.T) {
	dir := t.TempDir()
	if _, err := security.WriteDevCerts(dir, []string{"n1"}, []string{"n1.example"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	f := security.Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "n1.crt"), Key: filepath.Join(dir, "n1.key")}
	m, err := security.LoadMutualTLS(f, zerolog.Nop())
	if err != nil || m.Subject() != "n1" {
		t.Fatalf("loading the dev certificates: %v", err)
	}
	other := t.TempDir()
	if _, err := security.WriteDevCerts(other, []string{"n1"}, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	wrong := f
	wrong.CA = filepath.Join(other, "ca.crt")
	if _, err := security.LoadMutualTLS(wrong, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "is not signed by the cluster's CA") {
		t.Errorf("a certificate of another CA: %v", err)
	}
	wrong = f
	wrong.Key = filepath.Join(other, "n1.key")
	if _, err := security.LoadMutualTLS(wrong, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "private key does not match") {
		t.Errorf("a key of another certificate: %v", err)
	}

	// A second run reuses the CA: the new node's certificate works with n1's.
	caBefore, _ := os.ReadFile(f.CA)
	if _, err := security.WriteDevCerts(dir, []string{"n2"}, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	caAfter, _ := os.ReadFile(f.CA)
	if !bytes.Equal(caBefore, caAfter) {
		t.Fatal("WriteDevCerts replaced an existing CA")
	}
	n2, err := security.LoadMutualTLS(security.Files{CA: f.CA, Cert: filepath.Join(dir, "n2.crt"), Key: filepath.Join(dir, "n2.key")}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if cerr, serr := exchange(t, m.Server(), n2.Client("")); cerr != nil || serr != nil {
		t.Fatalf("n2 to n1: %v, %v", cerr, serr)
	}
	if st, err := os.Stat(filepath.Join(dir, "n2.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
}

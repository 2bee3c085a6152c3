package security_test

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/security"
)

// TestCertificatesNameTheirNode: a node's certificate carries its name as
// its common name, which is the name security.NodeName reads; names a node
// could not have, and a name given twice, are refused before anything is
// written.
func TestCertificatesNameTheirNode(t *testing.T) {
	dir := t.TempDir()
	if _, err := security.WriteDevCerts(dir, []string{"n1", "n2"}, []string{"n2", "10.0.0.9"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n1", "n2"} {
		data, err := os.ReadFile(filepath.Join(dir, n+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(data)
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if got := security.NodeName(c); got != n {
			t.Errorf("%s.crt names node %q", n, got)
		}
	}
	for _, c := range []struct {
		nodes []string
		want  string
	}{
		{[]string{"n3", "a/b"}, `node name "a/b" has '/'`},
		{[]string{"n3", ""}, "node name is empty"},
		{[]string{"n3", "n4", "n3"}, `node "n3" is named twice`},
	} {
		other := t.TempDir()
		_, err := security.WriteDevCerts(other, c.nodes, nil, time.Hour)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("WriteDevCerts(%q): %v; want an error mentioning %q", c.nodes, err, c.want)
		}
		if entries, _ := os.ReadDir(other); len(entries) != 0 {
			t.Errorf("WriteDevCerts(%q) wrote %d files before refusing", c.nodes, len(entries))
		}
	}
	ca, err := security.NewCA("ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Issue("n 1", nil, time.Hour); err == nil || !strings.Contains(err.Error(), `node name "n 1"`) {
		t.Errorf("Issue(%q): %v; want a refusal naming it", "n 1", err)
	}
}

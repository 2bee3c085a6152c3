package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/troupe-dev/troupe/security"
)

// TestCertsNameEachNode: `node certs` issues one certificate per node whose
// common name is the node's name (the name the node port holds a peer to),
// and refuses a name a node could not have or a name given twice.
func TestCertsNameEachNode(t *testing.T) {
	dir := t.TempDir()
	if out, err := cli(t, "certs", "--out", dir, "--nodes", "n1,n2", "--hosts", "n2,api.example.net"); err != nil {
		t.Fatalf("node certs: %v\n%s", err, out)
	}
	for _, n := range []string{"n1", "n2"} {
		data, err := os.ReadFile(filepath.Join(dir, n+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(data)
		if b == nil {
			t.Fatalf("%s.crt holds no PEM block", n)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if got := security.NodeName(c); got != n {
			t.Errorf("%s.crt is issued for node %q", n, got)
		}
	}
	for _, c := range []struct{ nodes, want string }{
		{"n3,a/b", `node name "a/b" has '/'`},
		{"n3,n3", `node "n3" is named twice`},
	} {
		out, err := cli(t, "certs", "--out", t.TempDir(), "--nodes", c.nodes)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("node certs --nodes %s: %v\n%s; want an error mentioning %q", c.nodes, err, out, c.want)
		}
	}
}

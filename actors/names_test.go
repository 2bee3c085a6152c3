package actors_test

import (
	"bufio"
	"bytes"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestNamesDoNotSwap type-checks code that passes a protocol name where a
// node name is due, and the other way round, against this package: it must
// not compile. The same code with the names in their places must.
func TestNamesDoNotSwap(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	// The export data of actors and its dependencies, from the build cache.
	out, err := exec.Command(goCmd, "list", "-export", "-deps", "-f", "{{.ImportPath}}={{.Export}}", "github.com/troupe-dev/troupe/actors").Output()
	if err != nil {
		t.Fatalf("go list -export: %v", err)
	}
	exports := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if path, file, ok := strings.Cut(sc.Text(), "="); ok && file != "" {
			exports[path] = file
		}
	}
	check := func(body string) []string {
		t.Helper()
		src := `package swap

import "github.com/troupe-dev/troupe/actors"

func use(ctx *actors.Context, n *actors.Node, node actors.NodeName, protocol actors.ProtocolName) {
` + body + `
}
`
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, "swap.go", src, 0)
		if err != nil {
			t.Fatal(err)
		}
		var errs []string
		conf := types.Config{
			Importer: importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) { return os.Open(exports[path]) }),
			Error:    func(err error) { errs = append(errs, err.Error()) },
		}
		_, _ = conf.Check("swap", fset, []*ast.File{f}, nil)
		return errs
	}

	if errs := check(`	_ = ctx.Send(node, nil)
	_ = ctx.SendReliable(node, nil)
	_ = ctx.Tell(protocol, nil)
	_ = n.Tell(protocol, nil)
	_, _ = n.Ref(protocol)
	_ = ctx.Send("node-2", nil) // an untyped constant is either
	_ = ctx.Tell("raft", nil)`); len(errs) > 0 {
		t.Fatalf("names in their places do not type-check: %v", errs)
	}
	for _, tc := range []struct{ body, want string }{
		{`	_ = ctx.Send(protocol, nil)`, "cannot use protocol (variable of string type actors.ProtocolName) as actors.NodeName value"},
		{`	_ = ctx.SendReliable(protocol, nil)`, "as actors.NodeName value"},
		{`	_ = ctx.Tell(node, nil)`, "cannot use node (variable of string type actors.NodeName) as actors.ProtocolName value"},
		{`	_ = n.Tell(node, nil)`, "as actors.ProtocolName value"},
		{`	_, _ = n.Ref(node)`, "as actors.ProtocolName value"},
		{`	var s string = "node-2"
	_ = ctx.Send(s, nil)`, "cannot use s (variable of type string) as actors.NodeName value"},
	} {
		errs := check(tc.body)
		if len(errs) != 1 || !strings.Contains(errs[0], tc.want) {
			t.Errorf("%s\ntype-checks with errors %q; want one error containing %q", strings.TrimSpace(tc.body), errs, tc.want)
		}
	}
}

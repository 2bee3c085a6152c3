package tutorial

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors/actortest"
)

// modulePath is the module the tutorial creates (its `go mod init`).
const modulePath = "example.com/counter"

// tutorial is what docs/tutorial.md holds for the test: the module's
// files and the shell lines that build the command and start the nodes.
type tutorial struct {
	files map[string]string // path in the module → content
	order []string          // the paths, in order of first appearance
	nodes []string          // the lines of the <!-- nodes --> block
}

// fileMark is the line naming a Go block's file: `counter.go`, or
// `counter.go` (continued) for its next part.
var fileMark = regexp.MustCompile("^`([^`]+)`( \\(continued\\))?$")

// parse reads the tutorial's marked blocks. Every ```go block must be
// named, so that no Go code in the tutorial goes untested.
func parse(doc string) (*tutorial, error) {
	tut := &tutorial{files: map[string]string{}}
	lines := strings.Split(doc, "\n")
	for i := 0; i < len(lines); i++ {
		line, at := lines[i], i+1
		file, continued, nodes := "", false, line == "<!-- nodes -->"
		if m := fileMark.FindStringSubmatch(line); m != nil && i+1 < len(lines) && lines[i+1] == "```go" {
			file, continued = m[1], m[2] != ""
		}
		if line == "```go" {
			return nil, fmt.Errorf("line %d: a Go block without its file's name (`PATH`) on the line before", at)
		}
		if file == "" && !nodes {
			continue
		}
		fence := "```go"
		if nodes {
			fence = "```sh"
		}
		if i+1 >= len(lines) || lines[i+1] != fence {
			return nil, fmt.Errorf("line %d: %q must be followed by a %s block", at, line, fence)
		}
		var body []string
		for i += 2; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			return nil, fmt.Errorf("line %d: the block after %q does not end", at, line)
		}
		if nodes {
			tut.nodes = append(tut.nodes, body...)
			continue
		}
		if filepath.IsAbs(file) || strings.HasPrefix(filepath.Clean(file), "..") {
			return nil, fmt.Errorf("line %d: file %q: a path inside the module, please", at, file)
		}
		if _, ok := tut.files[file]; ok != continued {
			return nil, fmt.Errorf("line %d: %q: a file's first block is named `PATH`, each later one `PATH` (continued)", at, line)
		} else if ok {
			tut.files[file] += "\n"
		} else {
			tut.order = append(tut.order, file)
		}
		tut.files[file] += strings.Join(body, "\n") + "\n"
	}
	if len(tut.files) == 0 || len(tut.nodes) == 0 {
		return nil, fmt.Errorf("found %d marked Go files and %d lines after <!-- nodes -->; want both", len(tut.files), len(tut.nodes))
	}
	return tut, nil
}

// TestParse: parse joins a file's parts and refuses Go that no test
// would build.
func TestParse(t *testing.T) {
	const nodes = "<!-- nodes -->\n```sh\n./counter --name n1\n```\n"
	tut, err := parse("`a.go`\n```go\npackage a\n```\ntext\n`a.go` (continued)\n```go\nvar x int\n```\n" + nodes)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tut.files["a.go"], "package a\n\nvar x int\n"; got != want || len(tut.order) != 1 {
		t.Errorf("a.go is %q (files %v); want %q", got, tut.order, want)
	}
	if !slices.Equal(tut.nodes, []string{"./counter --name n1"}) {
		t.Errorf("nodes are %q", tut.nodes)
	}
	for _, bad := range []string{
		"```go\npackage a\n```\n" + nodes,                                        // unnamed
		"`a.go` (continued)\n```go\npackage a\n```\n" + nodes,                    // continues nothing
		"`a.go`\n```go\npackage a\n```\n`a.go`\n```go\nvar x int\n```\n" + nodes, // named twice
		"`a.go`\n```go\npackage a\n",                                             // never ends
		"`../a.go`\n```go\npackage a\n```\n" + nodes,                             // outside the module
		"`a.go`\n```go\npackage a\n```\n",                                        // no nodes
	} {
		if _, err := parse(bad); err == nil {
			t.Errorf("parse(%q) succeeded; want an error", bad)
		}
	}
}

// TestTutorial builds docs/tutorial.md's code as an outside module of
// its own, with no protoc on the PATH, runs its vet and tests, builds its
// command and runs three nodes of it as the tutorial starts them, until
// each prints the converged total.
func TestTutorial(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the tutorial's module (about 10 s with a warm build cache)")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "tutorial.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "go mod init "+modulePath+"\n") {
		t.Fatalf("docs/tutorial.md does not create the module %s (go mod init %s)", modulePath, modulePath)
	}
	tut, err := parse(string(doc))
	if err != nil {
		t.Fatalf("docs/tutorial.md: %v", err)
	}
	dir := writeModule(t, root, tut)
	env := toolchain(t)

	start := time.Now()
	gorun(t, dir, env, "vet", "./...")
	gorun(t, dir, env, "test", "-count=1", "./...")
	pkg, exe := build(t, tut.nodes)
	gorun(t, dir, env, "build", "-o", exe, pkg)
	t.Logf("vet, test and build of the tutorial's module: %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	runNodes(t, exe, tut.nodes)
	t.Logf("three nodes started, converged and stopped: %v", time.Since(start).Round(time.Millisecond))
}

// writeModule writes the tutorial's files into a new directory, with a
// go.mod requiring Troupe from root (a replace directive) and the
// repository's go.sum.
func writeModule(t *testing.T, root string, tut *tutorial) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range tut.order {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(tut.files[name]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repoMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	version := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(repoMod)
	if version == nil {
		t.Fatal("the repository's go.mod has no go line")
	}
	mod := fmt.Sprintf("module %s\n\ngo %s\n\nrequire github.com/troupe-dev/troupe v0.0.0\n\nreplace github.com/troupe-dev/troupe => %s\n",
		modulePath, version[1], root)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// toolchain is the environment the tutorial's module is built in: a PATH
// of one directory holding links to the go command and, when cgo is on,
// the C compiler with its assembler and linker — and nothing else, so no
// protoc; and this machine's module proxy (go env GOPROXY), adding the
// requirements the code needs to go.mod as it builds (-mod=mod), which is
// what `go get` and `go mod tidy` do for a newcomer with a network. The
// proxy is asked only for what the module cache lacks: with the module
// cache off the proxy (GOPROXY=off), a fresh machine failed, as the outside
// module's graph needs go.mod files the repository's pruned graph never
// downloads (github.com/stretchr/testify@v1.7.0's).
func toolchain(t *testing.T) []string {
	t.Helper()
	goExe, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on the PATH: %v", err)
	}
	bin := t.TempDir()
	tools := map[string]string{"go": goExe}
	cgo, err := exec.Command(goExe, "env", "CGO_ENABLED", "CC").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	if f := strings.Fields(string(cgo)); len(f) >= 2 && f[0] == "1" {
		// cgo on, as for the repository's own build: the standard
		// library's cgo packages are then in the build cache already.
		for _, tool := range []string{f[1], "as", "ld"} {
			if path, err := exec.LookPath(tool); err == nil {
				tools[filepath.Base(tool)] = path
			}
		}
	}
	for name, path := range tools {
		if err := os.Symlink(path, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	if protoc, err := exec.LookPath("protoc"); err == nil {
		t.Logf("protoc is at %s on this machine, and not on the tutorial's PATH (%s: %v)", protoc, bin, slices.Sorted(maps.Keys(tools)))
	}
	if _, err := os.Stat(filepath.Join(bin, "protoc")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("protoc is on the tutorial's PATH (%v)", err)
	}
	proxy, err := exec.Command(goExe, "env", "GOPROXY").Output()
	if err != nil {
		t.Fatalf("go env GOPROXY: %v", err)
	}
	env := []string{"PATH=" + bin, "GOFLAGS=-mod=mod -buildvcs=false", "GOPROXY=" + strings.TrimSpace(string(proxy)), "GOSUMDB=off", "GOWORK=off", "GOTOOLCHAIN=local"}
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "PATH", "GOFLAGS", "GOPROXY", "GOSUMDB", "GONOSUMDB", "GOWORK", "GOTOOLCHAIN", "GO111MODULE":
		default:
			env = append(env, kv)
		}
	}
	return env
}

// gorun runs the go command in dir, failing the test with its output.
func gorun(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Path = filepath.Join(strings.TrimPrefix(env[0], "PATH="), "go")
	cmd.Dir, cmd.Env = dir, env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s in the tutorial's module: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("go %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

// build finds the tutorial's `go build -o NAME PKG` line among the node
// lines and returns PKG and where to put the binary.
func build(t *testing.T, lines []string) (pkg, exe string) {
	t.Helper()
	for _, line := range lines {
		if f := strings.Fields(line); len(f) == 5 && f[0] == "go" && f[1] == "build" && f[2] == "-o" {
			return f[4], filepath.Join(t.TempDir(), f[3])
		}
	}
	t.Fatalf("the <!-- nodes --> block has no `go build -o NAME PKG` line: %q", lines)
	return "", ""
}

var loopbackAddr = regexp.MustCompile(`127\.0\.0\.1:(\d+)`)

// node is one process the tutorial starts.
type node struct {
	name    string
	add     uint64
	cmd     *exec.Cmd
	out     chan string   // its stdout lines; closed at the end of its stdout
	exited  chan struct{} // closed once it has exited, with exitErr set
	exitErr error
	stderr  lockedBuffer
}

// lockedBuffer is a process's stderr, written by exec's goroutine and
// read by the test's.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start starts the node's process and a goroutine that reads its stdout
// and waits for its end; the test's end kills it if it still runs.
func (n *node) start(t *testing.T, exe string, args []string) {
	t.Helper()
	n.cmd = exec.Command(exe, args...)
	n.cmd.Stderr = &n.stderr
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", n.name, err)
	}
	n.out, n.exited = make(chan string, 1024), make(chan struct{})
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			n.out <- s.Text() // a line per growth of the total: a few
		}
		close(n.out)
		n.exitErr = n.cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-n.exited:
		default:
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
	})
}

// runNodes starts the tutorial's `./NAME ...` lines as processes of exe,
// each of the tutorial's loopback ports replaced by a free one, waits
// until every node prints the sum of their --add values as its total
// (and none prints more), then stops each with SIGTERM and wants a clean
// exit.
func runNodes(t *testing.T, exe string, lines []string) {
	t.Helper()
	var starts [][]string
	for _, line := range lines {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "./"+filepath.Base(exe) {
			starts = append(starts, slices.DeleteFunc(f[1:], func(s string) bool { return s == "&" }))
		}
	}
	if len(starts) < 2 {
		t.Fatalf("the <!-- nodes --> block starts %d nodes; want a cluster", len(starts))
	}
	var old []string
	for _, args := range starts {
		for _, m := range loopbackAddr.FindAllStringSubmatch(strings.Join(args, " "), -1) {
			if !slices.Contains(old, m[1]) {
				old = append(old, m[1])
			}
		}
	}
	free := actortest.FreePorts(t, len(old))
	port := map[string]string{}
	for i, p := range old {
		port[p] = strconv.Itoa(free[i])
	}

	var nodes []*node
	var want uint64
	for _, args := range starts {
		n := &node{}
		for i := range args {
			args[i] = loopbackAddr.ReplaceAllStringFunc(args[i], func(a string) string { return "127.0.0.1:" + port[a[len("127.0.0.1:"):]] })
			switch {
			case i > 0 && args[i-1] == "--name":
				n.name = args[i]
			case i > 0 && args[i-1] == "--add":
				v, err := strconv.ParseUint(args[i], 10, 64)
				if err != nil {
					t.Fatalf("--add %q: %v", args[i], err)
				}
				n.add = v
			}
		}
		if n.name == "" {
			t.Fatalf("node %q has no --name", args)
		}
		want += n.add
		n.start(t, exe, args)
		nodes = append(nodes, n)
	}

	deadline := time.After(30 * time.Second)
	for _, n := range nodes {
		final := fmt.Sprintf("%s total=%d", n.name, want)
		for done := false; !done; {
			select {
			case line, ok := <-n.out:
				if !ok {
					<-n.exited
					t.Fatalf("%s ended (%v) before printing %q\nstderr:\n%s", n.name, n.exitErr, final, n.stderr.String())
				}
				var total uint64
				if _, err := fmt.Sscanf(line, n.name+" total=%d", &total); err != nil {
					t.Fatalf("%s printed %q; want lines %q", n.name, line, n.name+" total=N")
				}
				if total > want {
					t.Fatalf("%s counts %d; the nodes added %d", n.name, total, want)
				}
				done = total == want
			case <-deadline:
				t.Fatalf("%s has not printed %q within 30s\nstderr:\n%s", n.name, final, n.stderr.String())
			}
		}
	}

	for _, n := range nodes {
		if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("stopping %s: %v", n.name, err)
		}
	}
	for _, n := range nodes {
		select {
		case <-n.exited:
			if n.exitErr != nil {
				t.Errorf("%s exited with %v after SIGTERM\nstderr:\n%s", n.name, n.exitErr, n.stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s still runs 10s after SIGTERM", n.name)
		}
	}
}

package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is one server process of a side of `bench kv --vs-etcd` (an etcd
// member or a `node run`), restartable with the same arguments. Its
// output goes to a log file in the run's temporary directory.
//
// Not safe for concurrent use: the benchmark's main goroutine owns it.
type proc struct {
	name   string
	bin    string
	args   []string
	env    []string // added to this process's environment
	log    string
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has been waited for
	killed bool          // by kill, since its last start
}

// start runs the process. It gets a process group of its own, so that an
// interrupt typed at the terminal reaches the benchmark alone, which then
// kills it; and it is killed by the kernel if the benchmark dies first.
func (p *proc) start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "--- %s: start %s %s\n", time.Now().Format(time.RFC3339Nano), p.bin, strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s (%s): %w", p.name, p.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.cmd, p.done, p.killed = cmd, done, false
	return nil
}

// running reports whether the process was started and has not exited.
func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL (no goodbye, no flush) and waits for
// it to be reaped. A process not running is left alone.
func (p *proc) kill() {
	if !p.running() {
		return
	}
	p.killed = true
	_ = p.cmd.Process.Kill()
	<-p.done
}

// died reports whether the process was started and exited without kill.
func (p *proc) died() bool { return p.cmd != nil && !p.killed && !p.running() }

// exitedError says that the process is gone, with the end of its log.
func (p *proc) exitedError() error {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return fmt.Errorf("%s exited; the end of its log (%s):\n%s", p.name, p.log, b)
}

// freePorts returns n TCP ports on 127.0.0.1 that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// errNoEtcd is returned by `bench kv --vs-etcd` when no etcd binary is on
// PATH; nothing has been started then.
var errNoEtcd = errors.New("bench kv --vs-etcd: no `etcd` on PATH; install etcd 3.4 or later (Debian, Ubuntu: apt-get install etcd-server) or put its directory on PATH")

// findEtcd is the path of the etcd binary on PATH.
func findEtcd() (string, error) {
	p, err := exec.LookPath("etcd")
	if err != nil {
		return "", fmt.Errorf("%w (%v)", errNoEtcd, err)
	}
	return p, nil
}

// buildNode builds cmd/node into dir with the go tool, from the module
// that holds the working directory (`go run ./cmd/bench` runs there).
func buildNode(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD (building cmd/node; or give --node-bin): %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("building cmd/node: the working directory is not in the troupe module; run from the repository or give --node-bin")
	}
	bin := filepath.Join(dir, "node")
	c := exec.Command("go", "build", "-o", bin, "./cmd/node")
	c.Dir = filepath.Dir(gomod)
	if out, err := c.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/node in %s: %w\n%s", c.Dir, err, out)
	}
	return bin, nil
}

//go:build unix

package actortest

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// reservePort takes an exclusive advisory lock on a file named for port, so
// no other test, in this process or another, is handed the same port until
// release. The kernel drops the lock when the process ends, killed or not.
func reservePort(port int) (release func(), ok bool) {
	dir := filepath.Join(os.TempDir(), "troupe-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return func() {}, true // no directory to lock in: rely on portFree
	}
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return func() {}, true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, false
	}
	return func() { _ = f.Close() }, true
}

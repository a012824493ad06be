//go:build unix

package ipc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpkey/mcpkey/internal/safefile"
)

// maxSunPath is the smallest sun_path among supported systems (104 bytes on
// macOS and the BSDs, 108 on Linux), including the terminating NUL.
const maxSunPath = 104

func listen(path string) (net.Listener, error) {
	if len(path) >= maxSunPath {
		return nil, fmt.Errorf("socket path %s is too long (%d bytes; the limit is %d)", path, len(path), maxSunPath-1)
	}
	if err := ensurePrivateDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	// The lock, held for the listener's lifetime, settles races between two
	// agents starting at once; the dial below catches agents that do not
	// hold it.
	lock, err := lockFile(path + ".lock")
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil, &AlreadyRunningError{Path: path, PID: waitForPID(path)}
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode().Type() != os.ModeSocket:
		lock.Close()
		return nil, fmt.Errorf("listen on %s: the file exists and is not a socket; remove it or choose another path", path)
	case err == nil:
		if pid, alive := probe(path); alive {
			lock.Close()
			return nil, &AlreadyRunningError{Path: path, PID: pid}
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			lock.Close()
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		lock.Close()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// No umask dance: umask is process-wide and would race with other
	// goroutines creating files. The 0700 directory already keeps others
	// out during the moment before the chmod.
	ln, err := net.Listen("unix", path)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		lock.Close()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return &unixListener{UnixListener: ln.(*net.UnixListener), lock: lock}, nil
}

// unixListener holds the socket's lock file until closed.
type unixListener struct {
	*net.UnixListener
	lock *os.File
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.lock.Close()
	return err
}

// ensurePrivateDir creates dir 0700 or checks that an existing one is owned
// by us and closed to others.
func ensurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create socket directory %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("socket directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("socket directory %s is not a directory", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("socket directory %s: cannot read its owner", dir)
	}
	if int(st.Uid) != os.Getuid() {
		return fmt.Errorf("socket directory %s is owned by uid %d, not %d; refusing to use it", dir, st.Uid, os.Getuid())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("socket directory %s has mode %#o; it must be 0700 (chmod 700 %s)", dir, perm, dir)
	}
	return nil
}

func lockFile(path string) (*os.File, error) {
	f, err := safefile.Open(path, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// probe dials the socket at path: alive reports whether something answers,
// pid is its process id when the system tells.
func probe(path string) (pid int, alive bool) {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return 0, false
	}
	defer c.Close()
	_, pid, _ = peerCred(c)
	return pid, true
}

// waitForPID asks the agent holding the lock for its pid, giving an agent
// that is still starting up to two seconds to listen.
func waitForPID(path string) int {
	deadline := time.Now().Add(2 * time.Second)
	for {
		if pid, alive := probe(path); alive || time.Now().After(deadline) {
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
}

//go:build unix

package ipc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxSunPath is the smallest sun_path among supported systems (104 bytes on
// macOS and the BSDs, 108 on Linux), including the terminating NUL.
const maxSunPath = 104

// listen binds path inside a directory it has opened and checked itself, so
// that nothing can swap the directory between the check and the bind: the
// directory is opened without following a symbolic link (O_NOFOLLOW), its
// owner and mode are read from that file descriptor, and every later step
// (the lock file, the stale-socket check, the bind, the chmod, the unlink
// on close) works relative to the descriptor, not the path.
func listen(path string) (net.Listener, error) {
	if len(path) >= maxSunPath {
		return nil, fmt.Errorf("socket path %s is too long (%d bytes; the limit is %d)", path, len(path), maxSunPath-1)
	}
	dir, err := openPrivateDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	name := filepath.Base(path)
	dfd := int(dir.Fd())
	fail := func(lock *os.File, err error) (net.Listener, error) {
		if lock != nil {
			lock.Close()
		}
		dir.Close()
		return nil, err
	}
	// The lock, held for the listener's lifetime, settles races between two
	// agents starting at once; the dial below catches agents that do not
	// hold it.
	lock, err := lockFileAt(dfd, name+".lock")
	if errors.Is(err, unix.EWOULDBLOCK) {
		return fail(nil, &AlreadyRunningError{Path: path, PID: waitForPID(path)})
	}
	if err != nil {
		return fail(nil, fmt.Errorf("listen on %s: %w", path, err))
	}
	var st unix.Stat_t
	err = unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil && st.Mode&unix.S_IFMT != unix.S_IFSOCK:
		return fail(lock, fmt.Errorf("listen on %s: the file exists and is not a socket; remove it or choose another path", path))
	case err == nil:
		if pid, alive := probe(path); alive {
			return fail(lock, &AlreadyRunningError{Path: path, PID: pid})
		}
		if err := unix.Unlinkat(dfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fail(lock, fmt.Errorf("remove stale socket %s: %w", path, err))
		}
	case !errors.Is(err, unix.ENOENT):
		return fail(lock, fmt.Errorf("listen on %s: %w", path, err))
	}
	ln, err := bindIn(dir, name, path)
	if err != nil {
		return fail(lock, err)
	}
	// No umask dance: umask is process-wide and would race with other
	// goroutines creating files. The 0700 directory already keeps others
	// out during the moment before the chmod.
	if err := unix.Fchmodat(dfd, name, 0o600, 0); err != nil {
		ln.Close()
		unix.Unlinkat(dfd, name, 0)
		return fail(lock, fmt.Errorf("listen on %s: %w", path, err))
	}
	return &unixListener{UnixListener: ln, lock: lock, dir: dir, dfd: dfd, name: name, path: path}, nil
}

// bindIn listens on a Unix socket named name inside the open directory dir
// (whose path is filepath.Dir(path)). On Linux it binds through
// /proc/self/fd/N/name, which names the opened directory itself whatever
// happens to the path. Elsewhere it binds the path and then checks that the
// socket is in dir (same device and inode through both), refusing it
// otherwise.
func bindIn(dir *os.File, name, path string) (*net.UnixListener, error) {
	dfd := int(dir.Fd())
	bindPath, viaFD := path, false
	if p := fmt.Sprintf("/proc/self/fd/%d/%s", dfd, name); sameDir(dir, filepath.Dir(p)) {
		bindPath, viaFD = p, true
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: bindPath, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // unixListener.Close unlinks relative to dir
	if viaFD {
		return ln, nil
	}
	var in, at unix.Stat_t
	errIn := unix.Fstatat(dfd, name, &in, unix.AT_SYMLINK_NOFOLLOW)
	errAt := unix.Lstat(path, &at)
	if errIn != nil || errAt != nil || in.Dev != at.Dev || in.Ino != at.Ino {
		ln.Close()
		return nil, fmt.Errorf("listen on %s: the socket directory was replaced while binding; refusing it", path)
	}
	return ln, nil
}

// sameDir reports whether path names the directory open as dir.
func sameDir(dir *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(dir.Fd()), &a) != nil || unix.Stat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// unixListener holds the socket's directory and lock file until closed.
type unixListener struct {
	*net.UnixListener
	lock, dir  *os.File
	dfd        int // dir's descriptor
	name, path string
	once       sync.Once
	err        error
}

// Addr is the socket's path, not the /proc name it may be bound through.
func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	l.once.Do(func() {
		l.err = l.UnixListener.Close()
		unix.Unlinkat(l.dfd, l.name, 0)
		l.lock.Close()
		l.dir.Close()
	})
	return l.err
}

// openPrivateDir opens dir, creating it 0700 if needed, and checks through
// the open descriptor that it is a real directory (not a symbolic link),
// owned by us and closed to group and others. Missing parent directories
// are created 0700 too.
func openPrivateDir(dir string) (*os.File, error) {
	parent, base := filepath.Dir(dir), filepath.Base(dir)
	var fd int
	var err error
	if base == "." || base == string(filepath.Separator) || parent == dir {
		fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		if err := os.MkdirAll(parent, 0o700); err != nil {
			return nil, fmt.Errorf("create socket directory %s: %w", parent, err)
		}
		pfd, perr := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if perr != nil {
			return nil, fmt.Errorf("socket directory %s: %w", parent, perr)
		}
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			unix.Close(pfd)
			return nil, fmt.Errorf("create socket directory %s: %w", dir, err)
		}
		fd, err = unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOTDIR) {
			// Linux answers ENOTDIR, not ELOOP, for a link with O_DIRECTORY.
			var st unix.Stat_t
			if unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
		}
		unix.Close(pfd)
	}
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("socket directory %s is a symbolic link; refusing to follow it (remove it, or set MCPKEY_SOCK)", dir)
	case errors.Is(err, unix.ENOTDIR):
		return nil, fmt.Errorf("socket directory %s is not a directory", dir)
	case err != nil:
		return nil, fmt.Errorf("socket directory %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("socket directory %s: %w", dir, err)
	}
	if int(st.Uid) != os.Getuid() {
		f.Close()
		return nil, fmt.Errorf("socket directory %s is owned by uid %d, not %d; refusing to use it", dir, st.Uid, os.Getuid())
	}
	if perm := st.Mode & 0o777; perm&0o077 != 0 {
		f.Close()
		return nil, fmt.Errorf("socket directory %s has mode %#o; it must be 0700 (chmod 700 %s)", dir, perm, dir)
	}
	return f, nil
}

// lockFileAt opens (creating 0600, never through a symbolic link) the file
// name in the directory dfd and takes an exclusive flock on it without
// waiting: unix.EWOULDBLOCK means another process holds it.
func lockFileAt(dfd int, name string) (*os.File, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
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
	_, pid, _ = PeerCred(c)
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

// rawConn is the raw connection under c, a Unix socket connection.
func rawConn(c net.Conn) (syscall.RawConn, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, errors.New("not a unix socket connection")
	}
	return sc.SyscallConn()
}

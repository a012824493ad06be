//go:build darwin || freebsd

package ipc

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// PeerCred returns the uid (LOCAL_PEERCRED) and, on macOS, the pid
// (LOCAL_PEERPID) of the process on the other end of a Unix socket
// connection. FreeBSD's xucred carries the pid in a union x/sys does not
// expose, so pid is 0 there.
func PeerCred(c net.Conn) (uid, pid int, err error) {
	rc, err := rawConn(c)
	if err != nil {
		return -1, 0, err
	}
	var cred *unix.Xucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		if serr == nil {
			pid = peerPID(int(fd))
		}
	}); err != nil {
		return -1, 0, err
	}
	if serr != nil {
		return -1, 0, fmt.Errorf("getsockopt LOCAL_PEERCRED: %w", serr)
	}
	return int(cred.Uid), pid, nil
}

// PeerExe is not implemented here: macOS needs proc_pidpath (cgo).
func PeerExe(pid int) string { return "" }

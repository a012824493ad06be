package ipc

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerHalfClosed reports whether the peer of c shut down only its sending
// side (shutdown(SHUT_WR), as `socat` and `nc -N` do after the last request):
// the socket shows POLLRDHUP but not POLLHUP, and replies can still be
// delivered. After a full close POLLHUP is set too.
func peerHalfClosed(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	half := false
	rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n == 1 {
			half = fds[0].Revents&unix.POLLRDHUP != 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLERR) == 0
		}
	})
	return half
}

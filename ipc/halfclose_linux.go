package ipc

import (
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// peerHalfClosed reports whether the peer of c shut down only its sending
// side (shutdown(SHUT_WR), as `socat` and `nc -N` do after the last request):
// the socket shows POLLRDHUP but not POLLHUP, and replies can still be
// delivered. After a full close POLLHUP is set too.
func peerHalfClosed(c net.Conn) bool {
	rc, err := rawConn(c)
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

// watchPeerClose calls gone, from another goroutine, once the peer of c,
// which has half-closed, closes completely (POLLHUP or POLLERR). stop ends
// the watch and waits for it; it leaves a read deadline in the past on c.
// The watcher sleeps in the netpoller, which wakes it on every change of
// the socket's state: no polling loop.
func watchPeerClose(c net.Conn, gone func()) (stop func()) {
	rc, err := rawConn(c)
	if err != nil {
		return func() {}
	}
	var stopped atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		hup := false
		rc.Read(func(fd uintptr) bool {
			if stopped.Load() {
				return true
			}
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
			if n, err := unix.Poll(fds, 0); err == nil && n == 1 && fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
				hup = true
				return true
			}
			return false // wait for the next readiness event
		})
		if hup && !stopped.Load() {
			gone()
		}
	}()
	return func() {
		stopped.Store(true)
		c.SetReadDeadline(time.Unix(1, 0)) // wakes the watcher
		<-done
	}
}

package server

import (
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// guardListener is the WebSocket's listener as the agent serves it: it
// bounds what a connection may cost before it has shown the secret, so
// that another user on the machine, who can reach any loopback port,
// cannot exhaust the agent's file descriptors (and with them the Unix
// socket's accept and the owner's token calls).
//
//   - A connection from another uid (Linux: the kernel's sock_diag names
//     the owner of the peer socket) is closed as soon as it is accepted.
//   - At most maxPending connections may be in their handshake at once;
//     while they are, Accept waits and the next connections wait in the
//     kernel's backlog, holding no descriptor of ours (a burst of
//     legitimate clients is served in turn, not refused).
//   - A handshake must finish (upgrade after every check passed) within
//     timeout, or the connection is closed.
//
// net/http has no cap on connections and only a per-request header
// timeout, hence this wrapper.
type guardListener struct {
	net.Listener
	pending chan struct{}
	done    chan struct{} // closed by Close: a waiting Accept returns
	once    sync.Once
	timeout time.Duration
	uid     int
	log     *slog.Logger

	foreign  atomic.Int64 // connections refused for their uid
	lastNote atomic.Int64 // unix nanoseconds of the last refusal log line
}

func newGuardListener(ln net.Listener, maxPending int, timeout time.Duration, log *slog.Logger) *guardListener {
	return &guardListener{Listener: ln, pending: make(chan struct{}, maxPending), done: make(chan struct{}),
		timeout: timeout, uid: os.Getuid(), log: log}
}

// Accept returns the next connection that may start a handshake, once a
// handshake slot is free.
func (l *guardListener) Accept() (net.Conn, error) {
	select {
	case l.pending <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.pending
			return nil, err
		}
		// When the kernel cannot say (not Linux, the peer already gone),
		// the handshake bounds below still apply.
		if uid, err := loopbackPeerUID(c); err == nil && uid != l.uid {
			c.Close()
			l.refused(&l.foreign, "refused websocket connections from other users", "uid", uid)
			continue
		}
		c.SetDeadline(time.Now().Add(l.timeout))
		return &pendingConn{Conn: c, l: l}, nil
	}
}

// Close closes the listener and ends a waiting Accept.
func (l *guardListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// refused counts a refusal and logs at most one line per 10 seconds, so a
// flood cannot fill the log.
func (l *guardListener) refused(n *atomic.Int64, msg string, args ...any) {
	total := n.Add(1)
	now := time.Now().UnixNano()
	last := l.lastNote.Load()
	if now-last < int64(10*time.Second) || !l.lastNote.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn(msg, append(args, "refused_so_far", total)...)
}

// pendingConn holds a handshake slot until it is admitted or closed.
type pendingConn struct {
	net.Conn
	l    *guardListener
	once sync.Once
}

func (c *pendingConn) release() { c.once.Do(func() { <-c.l.pending }) }

// admit ends the handshake: the slot is freed and the handshake deadline
// lifted (the WebSocket connection sets its own).
func (c *pendingConn) admit() {
	c.release()
	c.Conn.SetDeadline(time.Time{})
}

func (c *pendingConn) Close() error {
	c.release()
	return c.Conn.Close()
}

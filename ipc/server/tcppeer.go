package server

import (
	"net"
	"net/netip"
	"os"

	"github.com/mcpkey/mcpkey/internal/tcppeer"
)

// loopbackPeerUID returns the uid owning the other end of c, a TCP
// connection on this machine (see package tcppeer).
func loopbackPeerUID(c net.Conn) (int, error) {
	p, err := tcppeer.Lookup(addrPort(c.RemoteAddr()), addrPort(c.LocalAddr()))
	if err != nil {
		return -1, err
	}
	return p.UID, nil
}

// tcpPeerPID finds the local process of this user on the other end of a
// loopback TCP connection (the WebSocket has no SO_PEERCRED), or 0: for a
// process of another user, an address not on this machine, or a system
// without sock_diag. It costs a walk of /proc.
func tcpPeerPID(remote, local net.Addr) int {
	r := addrPort(remote)
	if !r.Addr().IsLoopback() {
		return 0
	}
	p, err := tcppeer.Lookup(r, addrPort(local))
	if err != nil || p.UID != os.Getuid() {
		return 0
	}
	return tcppeer.PID(p.Inode)
}

// addrPort is a's address and port (the zero value for other than TCP).
func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return netip.AddrPort{}
}

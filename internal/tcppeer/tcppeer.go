// Package tcppeer names the local process on the other end of a loopback
// TCP connection, which Go's net package cannot: a TCP socket has no
// SO_PEERCRED. The agent asks it who opened a WebSocket connection (another
// user is refused at accept; policy may judge the program) and who opened
// the login listener's one-time address and callback.
//
// On Linux the kernel answers (NETLINK_SOCK_DIAG) with the uid and inode of
// the socket whose local address is the connection's remote one; the
// process holding that inode is found among /proc/PID/fd. Elsewhere Lookup
// returns errors.ErrUnsupported.
package tcppeer

import "errors"

// Peer is the socket on the other end of a connection.
type Peer struct {
	UID   int    // its owner
	Inode uint32 // its inode, for PID
}

// ErrNotFound: the kernel knows no socket at the other end (it is gone,
// or it is not on this machine).
var ErrNotFound = errors.New("tcppeer: no such socket on this machine")

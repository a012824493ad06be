package ipc

import (
	"net"
	"os"
)

// PeerCred on Windows: AF_UNIX sockets carry no peer uid. The socket lives in
// the user's %LOCALAPPDATA%, whose ACL admits only that user (and
// administrators), so the directory is the access check. The uid reported is
// os.Getuid() (-1 on Windows), which the server's check accepts.
func PeerCred(c net.Conn) (uid, pid int, err error) {
	return os.Getuid(), 0, nil
}

func PeerExe(pid int) string { return "" }

//go:build unix && !linux && !darwin && !freebsd

package ipc

import (
	"errors"
	"net"
)

// PeerCred is not implemented on this system: connections are refused
// (fail closed) rather than served unauthenticated.
func PeerCred(c net.Conn) (uid, pid int, err error) {
	return -1, 0, errors.ErrUnsupported
}

func PeerExe(pid int) string { return "" }

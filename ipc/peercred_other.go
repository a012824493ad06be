//go:build unix && !linux && !darwin && !freebsd

package ipc

import (
	"errors"
	"net"
)

// peerCred is not implemented on this system: connections are refused
// (fail closed) rather than served unauthenticated.
func peerCred(c net.Conn) (uid, pid int, err error) {
	return -1, 0, errors.ErrUnsupported
}

func peerExe(pid int) string { return "" }

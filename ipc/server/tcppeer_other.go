//go:build !linux

package server

import (
	"errors"
	"net"
)

// loopbackPeerUID is Linux-only (sock_diag); elsewhere the WebSocket's
// handshake cap and timeout are the only bounds on other users.
func loopbackPeerUID(net.Conn) (int, error) { return -1, errors.ErrUnsupported }

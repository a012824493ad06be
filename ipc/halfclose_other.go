//go:build !linux

package ipc

import "net"

// peerHalfClosed cannot tell a half close from a close here; a peer's EOF
// cancels its requests.
func peerHalfClosed(c net.Conn) bool { return false }

// watchPeerClose is never needed here: peerHalfClosed is always false.
func watchPeerClose(c net.Conn, gone func()) (stop func()) { return func() {} }

//go:build !linux

package server

import "net"

// tcpPeerPID is only implemented on Linux (/proc/net/tcp); elsewhere a
// WebSocket caller has no pid and is identified by its secret.
func tcpPeerPID(remote, local net.Addr) int { return 0 }

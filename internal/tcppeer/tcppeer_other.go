//go:build !linux

package tcppeer

import (
	"errors"
	"net/netip"
)

// Lookup is implemented on Linux only.
func Lookup(remote, local netip.AddrPort) (Peer, error) { return Peer{}, errors.ErrUnsupported }

// PID is implemented on Linux only.
func PID(inode uint32) int { return 0 }

//go:build !linux

package oauth

import "net/netip"

// loopbackPeerUID is not implemented here: ok is false, so the caller
// cannot tell which user opened the connection (see the README's threat
// model).
func loopbackPeerUID(remote, local netip.AddrPort) (uid int, ok bool, err error) {
	return -1, false, nil
}

package oauth

import (
	"net"
	"net/netip"
	"os"
	"testing"
)

// TestLoopbackPeerUID: the owner of our own loopback connection is found
// in /proc/net/tcp, and a connection that does not exist is an error, not
// a match.
func TestLoopbackPeerUID(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client := netip.MustParseAddrPort(c.LocalAddr().String())
	server := netip.MustParseAddrPort(ln.Addr().String())
	uid, ok, err := loopbackPeerUID(client, server)
	if !ok {
		t.Skip("/proc/net/tcp is not readable here")
	}
	if err != nil || uid != os.Geteuid() {
		t.Errorf("peer uid = %d, %v; want %d", uid, err, os.Geteuid())
	}
	gone := netip.AddrPortFrom(client.Addr(), client.Port()+1)
	if _, _, err := loopbackPeerUID(gone, server); err == nil {
		t.Error("a connection that does not exist was found")
	}
}

package tcppeer

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
)

// TestLookup: the kernel names this process's uid, and a socket whose inode
// this process holds, as the other end of a loopback connection, over IPv4
// and IPv6; a connection that does not exist is ErrNotFound, not a match.
func TestLookup(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Logf("%s: %v (skipped)", addr, err)
			continue
		}
		defer ln.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		remote, local := s.RemoteAddr().(*net.TCPAddr).AddrPort(), s.LocalAddr().(*net.TCPAddr).AddrPort()
		p, err := Lookup(remote, local)
		if err != nil || p.UID != os.Getuid() {
			t.Fatalf("%s: Lookup = %+v, %v; want uid %d", addr, p, err, os.Getuid())
		}
		if pid := PID(p.Inode); pid != os.Getpid() {
			t.Errorf("%s: PID(%d) = %d, want this process %d", addr, p.Inode, pid, os.Getpid())
		}
		gone := netip.AddrPortFrom(remote.Addr(), remote.Port()+1)
		if _, err := Lookup(gone, local); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: a connection that does not exist: %v, want ErrNotFound", addr, err)
		}
	}
}

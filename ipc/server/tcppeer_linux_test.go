package server

import (
	"net"
	"os"
	"testing"
)

// TestLoopbackPeerUID: the kernel names this process's uid as the owner of
// the other end of a loopback connection, over IPv4 and IPv6.
func TestLoopbackPeerUID(t *testing.T) {
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
		uid, err := loopbackPeerUID(s)
		if err != nil || uid != os.Getuid() {
			t.Errorf("%s: loopbackPeerUID = %d, %v; want %d", addr, uid, err, os.Getuid())
		}
	}
}

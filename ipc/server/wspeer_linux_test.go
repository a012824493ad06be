package server

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestTCPPeerPID: the process on the other end of a loopback TCP
// connection is found through /proc, here a real child (nc or bash's
// /dev/tcp); a connection from this process finds this process.
func TestTCPPeerPID(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")

	// This process.
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
	if pid := tcpPeerPID(s.RemoteAddr(), s.LocalAddr()); pid != os.Getpid() {
		t.Fatalf("peer of our own connection = %d, want %d", pid, os.Getpid())
	}

	// A child process that connects and waits.
	child := exec.Command("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/"+port+"; read -t 30 <&3")
	if err := child.Start(); err != nil {
		t.Skipf("bash: %v", err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	s2, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if pid := tcpPeerPID(s2.RemoteAddr(), s2.LocalAddr()); pid != child.Process.Pid {
		t.Fatalf("peer = %d, want the child %d", pid, child.Process.Pid)
	}
	// Not loopback, or not TCP: no answer.
	if pid := tcpPeerPID(&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}, s2.LocalAddr()); pid != 0 {
		t.Fatalf("peer of a non-loopback address = %d", pid)
	}
}

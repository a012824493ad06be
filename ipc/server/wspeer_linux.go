package server

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// tcpPeerPID finds the local process on the other end of a loopback TCP
// connection (the WebSocket has no SO_PEERCRED): the socket whose local
// address is the connection's remote one, owned by this user, in
// /proc/net/tcp{,6}, then the process holding that socket's inode among
// this user's /proc/PID/fd. It returns 0 when there is none, as for a
// process of another user (whose fds cannot be read). It costs a walk of
// /proc, once per connection.
func tcpPeerPID(remote, local net.Addr) int {
	r, ok1 := remote.(*net.TCPAddr)
	l, ok2 := local.(*net.TCPAddr)
	if !ok1 || !ok2 || !r.IP.IsLoopback() {
		return 0
	}
	inode := ""
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if inode = findSocket(table, r, l); inode != "" {
			break
		}
	}
	if inode == "" {
		return 0
	}
	want := "socket:[" + inode + "]"
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		dir := "/proc/" + p.Name() + "/fd/"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink(dir + fd.Name()); err == nil && link == want {
				return pid
			}
		}
	}
	return 0
}

// findSocket returns the inode of the socket in table (/proc/net/tcp
// format) from local address src to dst, owned by this user.
func findSocket(table string, src, dst *net.TCPAddr) string {
	f, err := os.Open(table)
	if err != nil {
		return ""
	}
	defer f.Close()
	from, to := procAddr(src), procAddr(dst)
	uid := strconv.Itoa(os.Getuid())
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
		fs := strings.Fields(sc.Text())
		if len(fs) >= 10 && strings.EqualFold(fs[1], from) && strings.EqualFold(fs[2], to) && fs[7] == uid {
			return fs[9]
		}
	}
	return ""
}

// procAddr formats a as /proc/net/tcp does: the address as 32-bit words in
// host (little-endian) order, in hex, then ':' and the port in hex.
func procAddr(a *net.TCPAddr) string {
	ip := a.IP.To4()
	if ip == nil {
		ip = a.IP.To16()
	}
	var b strings.Builder
	for i := 0; i+4 <= len(ip); i += 4 {
		var w [4]byte
		binary.LittleEndian.PutUint32(w[:], binary.BigEndian.Uint32(ip[i:i+4]))
		b.WriteString(strings.ToUpper(hex.EncodeToString(w[:])))
	}
	return fmt.Sprintf("%s:%04X", b.String(), a.Port)
}

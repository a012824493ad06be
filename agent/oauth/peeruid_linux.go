package oauth

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// loopbackPeerUID returns the uid owning the client end of a loopback TCP
// connection: the socket whose local address is remote and whose remote
// address is local, read from /proc/net/tcp (the ident lookup of RFC 1413,
// done locally). Go's net package exposes no credentials for TCP peers, so
// the table is read by hand. ok is false when the table cannot be read;
// a connection absent from a readable table is an error.
func loopbackPeerUID(remote, local netip.AddrPort) (uid int, ok bool, err error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return -1, false, nil
	}
	defer f.Close()
	want := procAddr(remote) + " " + procAddr(local)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// sl local rem st tx:rx tr:when retrnsmt uid …
		if len(fields) < 8 || fields[1]+" "+fields[2] != want {
			continue
		}
		n, err := strconv.Atoi(fields[7])
		if err != nil {
			return -1, true, fmt.Errorf("peer uid: bad uid field in /proc/net/tcp")
		}
		return n, true, nil
	}
	if err := sc.Err(); err != nil {
		return -1, false, nil
	}
	return -1, true, errors.New("peer uid: the connection is not in /proc/net/tcp")
}

// procAddr formats an IPv4 address and port as /proc/net/tcp does: the
// address's four bytes read as a native-endian 32-bit number, then the
// port, both upper-case hex.
func procAddr(ap netip.AddrPort) string {
	b := ap.Addr().Unmap().As4()
	return fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(b[:]), ap.Port())
}

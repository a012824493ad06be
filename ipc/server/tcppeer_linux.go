package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// loopbackPeerUID returns the uid owning the other end of c, a TCP
// connection on this machine, by asking the kernel (NETLINK_SOCK_DIAG,
// SOCK_DIAG_BY_FAMILY) for the socket whose local address is c's remote
// address and whose remote address is c's local one. It returns an error
// when the kernel cannot answer (no sock_diag, not TCP, the peer socket
// already gone).
//
// Gap: golang.org/x/sys/unix has the constants but not the inet_diag
// structures; the request and the reply are laid out here after
// linux/inet_diag.h (struct inet_diag_req_v2 and struct inet_diag_msg).
func loopbackPeerUID(c net.Conn) (int, error) {
	local, ok1 := c.LocalAddr().(*net.TCPAddr)
	remote, ok2 := c.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return -1, errors.New("not a tcp connection")
	}
	family := byte(unix.AF_INET)
	src, dst := remote.IP.To4(), local.IP.To4()
	if src == nil || dst == nil {
		family, src, dst = unix.AF_INET6, remote.IP.To16(), local.IP.To16()
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, fmt.Errorf("sock_diag: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 1}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)

	const hdrLen, reqLen = 16, 56
	req := make([]byte, hdrLen+reqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], hdrLen+reqLen)
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], 1) // sequence number
	r := req[hdrLen:]
	r[0], r[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], 0xffffffff) // every state
	id := r[8:]                     // struct inet_diag_sockid
	binary.BigEndian.PutUint16(id[0:], uint16(remote.Port))
	binary.BigEndian.PutUint16(id[2:], uint16(local.Port))
	copy(id[4:20], src)
	copy(id[20:36], dst)
	ne.PutUint32(id[40:], 0xffffffff) // INET_DIAG_NOCOOKIE
	ne.PutUint32(id[44:], 0xffffffff)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return -1, fmt.Errorf("sock_diag: %w", err)
	}
	buf := make([]byte, 512)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return -1, fmt.Errorf("sock_diag: %w", err)
	}
	if n < hdrLen {
		return -1, errors.New("sock_diag: short reply")
	}
	switch ne.Uint16(buf[4:]) {
	case unix.NLMSG_ERROR:
		if n >= hdrLen+4 {
			if errno := syscall.Errno(-int32(ne.Uint32(buf[hdrLen:]))); errno != 0 {
				return -1, fmt.Errorf("sock_diag: %w", errno)
			}
		}
		return -1, errors.New("sock_diag: error reply")
	case unix.SOCK_DIAG_BY_FAMILY:
		const uidOff = hdrLen + 4 + 48 + 12 // after family..retrans, the sockid, expires, rqueue, wqueue
		if n < uidOff+4 {
			return -1, errors.New("sock_diag: short reply")
		}
		return int(ne.Uint32(buf[uidOff:])), nil
	}
	return -1, errors.New("sock_diag: unexpected reply")
}

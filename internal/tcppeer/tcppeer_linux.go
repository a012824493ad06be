package tcppeer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Lookup returns the socket whose local address is remote and whose remote
// address is local, as the kernel's sock_diag interface reports it.
//
// Gap: golang.org/x/sys/unix has the constants but not the inet_diag
// structures; the request and the reply are laid out here after
// linux/inet_diag.h (struct inet_diag_req_v2 and struct inet_diag_msg).
func Lookup(remote, local netip.AddrPort) (Peer, error) {
	family := byte(unix.AF_INET)
	ra, la := remote.Addr().Unmap(), local.Addr().Unmap()
	if !ra.Is4() || !la.Is4() {
		family, ra, la = unix.AF_INET6, remote.Addr(), local.Addr()
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return Peer{}, fmt.Errorf("sock_diag: %w", err)
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
	binary.BigEndian.PutUint16(id[0:], remote.Port())
	binary.BigEndian.PutUint16(id[2:], local.Port())
	copy(id[4:20], ra.AsSlice())
	copy(id[20:36], la.AsSlice())
	ne.PutUint32(id[40:], 0xffffffff) // INET_DIAG_NOCOOKIE
	ne.PutUint32(id[44:], 0xffffffff)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Peer{}, fmt.Errorf("sock_diag: %w", err)
	}
	buf := make([]byte, 512)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return Peer{}, fmt.Errorf("sock_diag: %w", err)
	}
	if n < hdrLen {
		return Peer{}, errors.New("sock_diag: short reply")
	}
	switch ne.Uint16(buf[4:]) {
	case unix.NLMSG_ERROR:
		if n >= hdrLen+4 {
			errno := syscall.Errno(-int32(ne.Uint32(buf[hdrLen:])))
			if errno == unix.ENOENT {
				return Peer{}, ErrNotFound
			}
			if errno != 0 {
				return Peer{}, fmt.Errorf("sock_diag: %w", errno)
			}
		}
		return Peer{}, errors.New("sock_diag: error reply")
	case unix.SOCK_DIAG_BY_FAMILY:
		// After family, state, timer, retrans (4), the sockid (48),
		// expires, rqueue, wqueue (12): uid, then inode.
		const uidOff = hdrLen + 4 + 48 + 12
		if n < uidOff+8 {
			return Peer{}, errors.New("sock_diag: short reply")
		}
		return Peer{UID: int(ne.Uint32(buf[uidOff:])), Inode: ne.Uint32(buf[uidOff+4:])}, nil
	}
	return Peer{}, errors.New("sock_diag: unexpected reply")
}

// PID returns the process holding the socket inode among the processes
// whose descriptors this one may read (its user's), or 0. It costs a walk
// of /proc.
func PID(inode uint32) int {
	want := "socket:[" + strconv.FormatUint(uint64(inode), 10) + "]"
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

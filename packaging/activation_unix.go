//go:build unix

package packaging

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

// listenFDsStart is SD_LISTEN_FDS_START: the first passed descriptor.
const listenFDsStart = 3

func activationListener() (net.Listener, bool, error) {
	pid, nfds := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS")
	defer func() {
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
	}()
	if pid == "" || nfds == "" || pid != strconv.Itoa(os.Getpid()) {
		return nil, false, nil
	}
	n, err := strconv.Atoi(nfds)
	if err != nil || n < 1 {
		return nil, false, fmt.Errorf("socket activation: LISTEN_FDS=%q is not a positive number", nfds)
	}
	if n != 1 {
		return nil, false, fmt.Errorf("socket activation passed %d sockets; mcpkey expects one (ListenStream= in mcpkey.socket)", n)
	}
	f := os.NewFile(listenFDsStart, "LISTEN_FD_3")
	// FileListener duplicates the descriptor (close-on-exec); closing the
	// original keeps fd 3 from leaking into children.
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, false, fmt.Errorf("socket activation: fd 3: %w", err)
	}
	if _, ok := ln.(*net.UnixListener); !ok {
		ln.Close()
		return nil, false, fmt.Errorf("socket activation: fd 3 is a %s listener, not a Unix socket", ln.Addr().Network())
	}
	return ln, true, nil
}

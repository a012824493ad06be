package packaging

import "net"

// ActivationListener returns the listening socket systemd passed to this
// process (socket activation, sd_listen_fds(3)): when LISTEN_PID is this
// process's pid and LISTEN_FDS is 1, fd 3 becomes a *net.UnixListener. It
// reports false, with no error, when nothing was passed (or it was meant for
// another process), so the agent then listens by itself. LISTEN_PID,
// LISTEN_FDS and LISTEN_FDNAMES are unset in every case, so children (the
// browser) do not inherit them.
//
// Hand-written rather than github.com/coreos/go-systemd/activation: it is
// twenty lines, and that module would be a dependency for one function.
// Closing the listener does not remove the socket file, which systemd owns.
// On Windows it always reports false.
func ActivationListener() (net.Listener, bool, error) {
	return activationListener()
}

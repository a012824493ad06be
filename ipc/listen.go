package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

// ErrNoAgent is returned (wrapped, with the socket path) when no agent
// listens on the socket: the file does not exist or refuses connections.
// The CLI branches on it to start an agent.
var ErrNoAgent = errors.New("no agent running")

// AlreadyRunningError is returned by Listen when a live agent already
// answers on the socket.
type AlreadyRunningError struct {
	Path string
	// PID is the running agent's process id, 0 if unknown.
	PID int
	// Lock is the per-user agent lock's path when that lock refused the
	// start (LockAgent); "" when the socket did (Listen).
	Lock string
}

func (e *AlreadyRunningError) Error() string {
	msg := "an agent is already running on " + e.Path
	if e.Path == "" {
		msg = "an agent is already running (it has not said on which socket yet)"
	}
	if e.PID > 0 {
		msg += ", pid " + strconv.Itoa(e.PID)
	}
	if e.Lock != "" {
		msg += " (one agent per user: lock " + e.Lock + ")"
	}
	return msg
}

// Listen creates the agent's Unix socket at path, ready for Server.Serve.
//
// The socket's directory is created 0700 if needed; an existing directory
// must be owned by the current user and closed to group and others, or
// Listen refuses, naming it. A leftover socket file is dialled first: when
// nothing answers it is replaced; when an agent answers Listen returns an
// *AlreadyRunningError. The socket is made 0600. Closing the listener removes
// the socket file.
func Listen(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("listen: empty socket path")
	}
	return listen(path)
}

// Dial connects to the agent socket at path. When nothing listens there the
// error wraps ErrNoAgent. On systems with peer credentials it also checks
// that the agent runs as the current user, so a socket planted by someone
// else is never trusted with a token.
func Dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w on %s", ErrNoAgent, path)
		}
		return nil, fmt.Errorf("connect to agent on %s: %w", path, err)
	}
	uid, _, err := PeerCred(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to agent on %s: %w", path, err)
	}
	if uid != os.Getuid() {
		c.Close()
		return nil, fmt.Errorf("connect to agent on %s: socket is served by uid %d, not %d; refusing it", path, uid, os.Getuid())
	}
	return c, nil
}

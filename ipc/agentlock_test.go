//go:build unix

package ipc_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// privateHome gives the test its own HOME, and so its own per-user lock,
// and leaves no socket setting behind.
func privateHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("MCPKEY_SOCK", "")
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(home, "run"))
	t.Setenv("TMPDIR", home)
	return home
}

func lockAgent(t *testing.T) *ipc.AgentLock {
	t.Helper()
	l, err := ipc.LockAgent()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); os.Remove(l.Path()) })
	return l
}

func TestAgentLockOnePerUser(t *testing.T) {
	privateHome(t)
	first := lockAgent(t)
	sock := filepath.Join(shortDir(t), "first.sock")
	if err := first.Publish(sock); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(first.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file %s: %v %v", first.Path(), fi.Mode(), err)
	}
	_, err := ipc.LockAgent()
	var are *ipc.AlreadyRunningError
	if !errors.As(err, &are) || are.Path != sock || are.PID != os.Getpid() || are.Lock != first.Path() {
		t.Fatalf("second LockAgent: %v (%+v), want the first's socket %s and pid %d", err, are, sock, os.Getpid())
	}
	for _, w := range []string{sock, "pid " + strconv.Itoa(os.Getpid()), "one agent per user"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("message %q lacks %q", err, w)
		}
	}
	if got, pid, ok := ipc.RunningAgent(); !ok || got != sock || pid != os.Getpid() {
		t.Errorf("RunningAgent = %q %d %v", got, pid, ok)
	}
	first.Close()
	if got, _, ok := ipc.RunningAgent(); ok {
		t.Errorf("RunningAgent after Close = %q", got)
	}
	again, err := ipc.LockAgent()
	if err != nil {
		t.Fatalf("LockAgent after the first let go: %v", err)
	}
	again.Close()
}

// TestAgentLockPerHome: another HOME is another agent's (tests, sudo
// without -H), so they do not refuse each other.
func TestAgentLockPerHome(t *testing.T) {
	privateHome(t)
	lockAgent(t)
	privateHome(t)
	lockAgent(t)
}

// TestClientFindsRunningAgent: a client whose default socket has no agent
// (another XDG_RUNTIME_DIR, as under a host that strips it) reaches the
// user's agent where its lock says it listens, without MCPKEY_SOCK.
func TestClientFindsRunningAgent(t *testing.T) {
	privateHome(t)
	s := startServer(t, &testBackend{}, server.ServerOptions{})
	lockAgent(t).Publish(s.path)
	c := &ipc.Client{}
	defer c.Close()
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("status through the lock's record: %v", err)
	}
	// An explicit path is never redirected.
	other := &ipc.Client{Path: filepath.Join(shortDir(t), "none.sock")}
	if _, err := other.Status(context.Background()); !errors.Is(err, ipc.ErrNoAgent) {
		t.Fatalf("explicit path: %v, want ErrNoAgent", err)
	}
}

// TestHostSocketPath: what a host-launched program derives ignores the
// variables hosts strip, and HostSocketEnv names the socket for the host's
// configuration exactly when the two differ.
func TestHostSocketPath(t *testing.T) {
	home := privateHome(t)
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("TMPDIR", "")
	host, _ := ipc.HostSocketPath()
	def, _ := ipc.DefaultSocketPath()
	if host != def {
		t.Fatalf("no XDG_RUNTIME_DIR, MCPKEY_SOCK or TMPDIR: host %q, default %q", host, def)
	}
	if env, err := ipc.HostSocketEnv(); err != nil || env != "" {
		t.Errorf("HostSocketEnv = %q, %v; want none", env, err)
	}
	for _, kv := range [][2]string{{"TMPDIR", home}, {"XDG_RUNTIME_DIR", filepath.Join(home, "run")}, {"MCPKEY_SOCK", "/x/agent.sock"}} {
		t.Setenv(kv[0], kv[1])
		if h, _ := ipc.HostSocketPath(); h != host {
			t.Errorf("with %s: host path %q, want %q", kv[0], h, host)
		}
		def, _ := ipc.DefaultSocketPath()
		if env, _ := ipc.HostSocketEnv(); env != def || env == host {
			t.Errorf("with %s: HostSocketEnv = %q, want %q", kv[0], env, def)
		}
	}
}

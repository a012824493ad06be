//go:build unix

package ipc_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
)

func TestListenPermissions(t *testing.T) {
	path := filepath.Join(shortDir(t), "new", "agent.sock")
	ln, err := ipc.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want socket 0600", fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, want 0700", di.Mode().Perm())
	}
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left after Close: %v", err)
	}
}

func TestListenRefusesUnsafeDir(t *testing.T) {
	t.Run("group and world readable", func(t *testing.T) {
		dir := filepath.Join(shortDir(t), "open")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o755)
		_, err := ipc.Listen(filepath.Join(dir, "agent.sock"))
		if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "0700") {
			t.Fatalf("Listen in a 0755 dir: err = %v, want a refusal naming %s", err, dir)
		}
	})
	t.Run("another owner", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("needs root to chown")
		}
		dir := filepath.Join(shortDir(t), "theirs")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		_, err := ipc.Listen(filepath.Join(dir, "agent.sock"))
		if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Fatalf("Listen in another user's dir: err = %v, want a refusal naming %s", err, dir)
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "agent.sock")
		os.WriteFile(path, []byte("x"), 0o600)
		if _, err := ipc.Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("err = %v, want not a socket", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "x" {
			t.Error("Listen clobbered a regular file")
		}
	})
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "agent.sock")
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	ln, err := ipc.Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	s := serveOn(t, &testBackend{}, server.ServerOptions{}, ln, path)
	c := s.client()
	defer c.Close()
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("status over the replaced socket: %v", err)
	}
}

func TestListenAlreadyRunning(t *testing.T) {
	s := startServer(t, &testBackend{}, server.ServerOptions{})
	_, err := ipc.Listen(s.path)
	var are *ipc.AlreadyRunningError
	if !errors.As(err, &are) {
		t.Fatalf("second Listen: err = %v, want *AlreadyRunningError", err)
	}
	if are.PID != os.Getpid() || are.Path != s.path {
		t.Errorf("AlreadyRunningError = %+v, want pid %d path %s", are, os.Getpid(), s.path)
	}
	want := "an agent is already running on " + s.path + ", pid " + strconv.Itoa(os.Getpid())
	if err.Error() != want {
		t.Errorf("message = %q, want %q", err.Error(), want)
	}
	// The first agent is unharmed.
	c := s.client()
	defer c.Close()
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("first agent after refused second: %v", err)
	}

	t.Run("live socket without the lock", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "agent.sock")
		other, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		go func() {
			for {
				c, err := other.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		_, err = ipc.Listen(path)
		if !errors.As(err, &are) || are.PID != os.Getpid() {
			t.Fatalf("err = %v, want *AlreadyRunningError with pid %d", err, os.Getpid())
		}
	})
}

func TestDialNoAgent(t *testing.T) {
	dir := shortDir(t)
	c := &ipc.Client{Path: filepath.Join(dir, "none.sock")}
	_, err := c.Status(context.Background())
	if !errors.Is(err, ipc.ErrNoAgent) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err = %v, want ErrNoAgent naming the path", err)
	}
	// A socket file nobody listens on refuses: also ErrNoAgent.
	path := filepath.Join(dir, "stale.sock")
	l, _ := net.Listen("unix", path)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	c = &ipc.Client{Path: path}
	if _, err := c.Status(context.Background()); !errors.Is(err, ipc.ErrNoAgent) {
		t.Fatalf("stale socket: err = %v, want ErrNoAgent", err)
	}
}

func TestDefaultSocketPath(t *testing.T) {
	t.Setenv("MCPKEY_SOCK", "/x/y.sock")
	if p, err := ipc.DefaultSocketPath(); err != nil || p != "/x/y.sock" {
		t.Errorf("with MCPKEY_SOCK: %q, %v", p, err)
	}
	t.Setenv("MCPKEY_SOCK", "")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if p, _ := ipc.DefaultSocketPath(); p != "/run/user/1000/mcpkey/agent.sock" {
		t.Errorf("with XDG_RUNTIME_DIR: %q", p)
	}
	os.Unsetenv("XDG_RUNTIME_DIR")
	if _, err := os.Lstat("/run/user/" + strconv.Itoa(os.Getuid())); err == nil {
		return // then it is /run/user/<uid>/mcpkey (TestDefaultSocketPathWithoutXDG)
	}
	want := filepath.Join(os.TempDir(), "mcpkey-"+strconv.Itoa(os.Getuid()), "agent.sock")
	if p, _ := ipc.DefaultSocketPath(); p != want {
		t.Errorf("without XDG_RUNTIME_DIR: %q, want %q", p, want)
	}
}

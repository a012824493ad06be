//go:build unix && !darwin

package ipc

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestDefaultSocketPathWithoutXDG: with XDG_RUNTIME_DIR stripped, the
// socket is in /run/user/<uid> when that is a directory of ours closed to
// others, the same place a login session's XDG_RUNTIME_DIR names; any other
// /run/user/<uid> is passed over for the temp dir.
func TestDefaultSocketPathWithoutXDG(t *testing.T) {
	base := t.TempDir()
	old := userRunBase
	userRunBase = base
	t.Cleanup(func() { userRunBase = old })
	uid := strconv.Itoa(os.Getuid())
	run := filepath.Join(base, uid)
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	fallback := filepath.Join("/tmp", "mcpkey-"+uid, "agent.sock")
	check := func(what, want string) {
		t.Helper()
		if got, _ := SocketPathIn(env("HOME", "/home/x")); got != want {
			t.Errorf("%s: %q, want %q", what, got, want)
		}
	}
	check("no /run/user/<uid>", fallback)
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	check("our 0700 /run/user/<uid>", filepath.Join(run, "mcpkey", "agent.sock"))
	if dir, _ := agentLockDir(); dir != filepath.Join(run, "mcpkey") {
		t.Errorf("lock dir %q", dir)
	}
	if got, _ := SocketPathIn(env("XDG_RUNTIME_DIR", run)); got != filepath.Join(run, "mcpkey", "agent.sock") {
		t.Errorf("a login session's XDG_RUNTIME_DIR gives another path: %q", got)
	}
	os.Chmod(run, 0o755)
	check("a 0755 /run/user/<uid>", fallback)
	os.Remove(run)
	other := t.TempDir()
	os.Symlink(other, run)
	check("a symbolic link", fallback)
	if os.Getuid() == 0 {
		os.Remove(run)
		os.Mkdir(run, 0o700)
		os.Chown(run, 65534, 65534)
		check("another user's", fallback)
	}
}

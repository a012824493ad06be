package e2e

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// asNobody runs a shell script as uid/gid 65534 (another local user), as
// setpriv does; it needs root (CI runs as root) and skips otherwise.
func asNobody(t *testing.T, script string, args ...string) {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root to act as another user with setpriv (CI runs as root)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		skipOrFail(t, "setpriv missing (util-linux)")
	}
	cmd := exec.Command("setpriv", append([]string{"--reuid", "65534", "--regid", "65534", "--clear-groups",
		"sh", "-c", script, "sh"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as uid 65534: %v\n%s", err, out)
	}
}

// sharedTempDir is a sticky, world-writable directory like /tmp.
func sharedTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "mcpkey-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestProxySecretFileRefusesAnotherUsersFile (issue 13.8): another user
// pre-creates the secret file 0666 in a shared directory; `mcpkey proxy
// --secret-file` must refuse it, name the owner, and write nothing there.
func TestProxySecretFileRefusesAnotherUsersFile(t *testing.T) {
	a := startAgent(t, "")
	secretFile := filepath.Join(sharedTempDir(t), "proxy.secret")
	asNobody(t, `umask 0; printf planted > "$1"`, secretFile)
	r := a.run(t, 20*time.Second, "proxy", "--listen", "127.0.0.1:0", "--secret-file", secretFile)
	if r.Code == 0 {
		t.Fatalf("proxy accepted a secret file owned by uid 65534\n%s", r.Stderr)
	}
	if !strings.Contains(r.Stderr, "belongs to uid 65534") {
		t.Errorf("stderr does not name the file's owner:\n%s", r.Stderr)
	}
	if b, err := os.ReadFile(secretFile); err != nil || string(b) != "planted" {
		t.Errorf("the other user's file now holds %q (%v): the secret reached it", b, err)
	}
}

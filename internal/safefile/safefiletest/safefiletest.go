// Package safefiletest helps tests act as another local user: it makes a
// directory anyone may write to, like /tmp, and plants files there as uid
// 65534 with setpriv (util-linux). Acting as another user needs root; CI
// runs as root, elsewhere the tests skip.
package safefiletest

import (
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// OtherUID is the uid (and gid) the planted files belong to: nobody.
const OtherUID = 65534

// SharedDir returns a new sticky, world-writable directory (mode 1777, like
// /tmp) that other users can reach; t.TempDir's parent is 0700.
func SharedDir(t testing.TB) string {
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

// AsOther runs the sh script with args as OtherUID, skipping t where that
// is not possible (not Linux, not root, no setpriv).
func AsOther(t testing.TB, script string, args ...string) {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root to act as another user with setpriv (CI runs as root)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv missing (util-linux)")
	}
	cmd := exec.Command("setpriv", append([]string{"--reuid", "65534", "--regid", "65534", "--clear-groups",
		"sh", "-c", script, "sh"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as uid %d: %v\n%s", OtherUID, err, out)
	}
}

// Plant creates path as OtherUID with mode 0666 and content "planted", as
// another local user would before mcpkey runs.
func Plant(t testing.TB, path string) {
	t.Helper()
	AsOther(t, `umask 0; printf planted > "$1"`, path)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("planted file %s: %v; want mode 0666", path, err)
	}
}

//go:build unix && !darwin

package ipc

import (
	"cmp"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

func defaultSocketPath(getenv func(string) string) (string, error) {
	uid := os.Getuid()
	rd := getenv("XDG_RUNTIME_DIR")
	if rd == "" && ownPrivateDir(userRunDir(uid)) {
		rd = userRunDir(uid)
	}
	tmp := getenv("TMPDIR") // as os.TempDir
	tmp = cmp.Or(tmp, "/tmp")
	return unixSocketPath(rd, tmp, uid), nil
}

// userRunBase holds systemd-logind's per-user runtime directories (a
// variable for tests).
var userRunBase = "/run/user"

// userRunDir is systemd-logind's runtime directory for uid: what
// XDG_RUNTIME_DIR is in a login session.
func userRunDir(uid int) string { return filepath.Join(userRunBase, strconv.Itoa(uid)) }

// agentLockDir is where the per-user agent lock lives: a directory every
// process of the user derives alike whatever its environment, on local,
// per-boot storage.
func agentLockDir() (string, error) {
	uid := os.Getuid()
	if d := userRunDir(uid); ownPrivateDir(d) {
		return filepath.Join(d, "mcpkey"), nil
	}
	return filepath.Join("/tmp", "mcpkey-"+strconv.Itoa(uid)), nil
}

// ownPrivateDir reports whether dir is a directory (not a link to one)
// owned by us and closed to group and others.
func ownPrivateDir(dir string) bool {
	var st unix.Stat_t
	return unix.Lstat(dir, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR &&
		int(st.Uid) == os.Getuid() && st.Mode&0o077 == 0
}

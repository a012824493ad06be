//go:build unix

package safefile

import (
	"errors"
	"io/fs"
	"syscall"
)

const extraFlags = syscall.O_NOFOLLOW | syscall.O_CLOEXEC

func owner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// isLinkErr: open with O_NOFOLLOW on a symlink fails with ELOOP (EMLINK on
// some BSDs).
func isLinkErr(err error) bool {
	return errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EMLINK)
}

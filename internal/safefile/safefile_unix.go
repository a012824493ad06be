//go:build unix

package safefile

import (
	"errors"
	"io/fs"
	"syscall"
)

const extraFlags = syscall.O_NOFOLLOW | syscall.O_CLOEXEC

// existingFlags: opening a FIFO for writing blocks until a reader comes;
// with O_NONBLOCK it fails at once (ENXIO) or opens, and checkOurs refuses
// it. O_NONBLOCK changes nothing for a regular file.
const existingFlags = syscall.O_NONBLOCK

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

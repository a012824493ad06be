//go:build unix

package ipc

import (
	"fmt"
	"os"
	"syscall"
)

// checkPrivateFile refuses a file that another user owns or that group or
// others may read or write.
func checkPrivateFile(path string, fi os.FileInfo) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("websocket info %s belongs to uid %d, not %d; refusing it", path, st.Uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("websocket info %s is open to other users (mode %v); refusing it", path, fi.Mode().Perm())
	}
	return nil
}

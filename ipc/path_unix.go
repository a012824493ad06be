//go:build unix && !darwin

package ipc

import "os"

func defaultSocketPath() (string, error) {
	return unixSocketPath(os.Getenv("XDG_RUNTIME_DIR"), os.TempDir(), os.Getuid()), nil
}

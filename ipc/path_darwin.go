package ipc

import (
	"os"
	"path/filepath"
)

// On macOS the socket's place depends only on HOME, which hosts pass on.
func defaultSocketPath(getenv func(string) string) (string, error) {
	return darwinSocketPath(getenv("HOME"), os.Getuid()), nil
}

// agentLockDir is where the per-user agent lock lives: the default
// socket's directory, derived from HOME alone.
func agentLockDir() (string, error) {
	return filepath.Dir(darwinSocketPath(os.Getenv("HOME"), os.Getuid())), nil
}

package ipc

import (
	"os"
	"path/filepath"
	"strconv"
)

// DefaultSocketPath returns the agent's socket path: $MCPKEY_SOCK when set,
// else per system:
//
//   - Linux and other Unix: $XDG_RUNTIME_DIR/mcpkey/agent.sock, or, when
//     XDG_RUNTIME_DIR is unset, <temp dir>/mcpkey-<uid>/agent.sock (Listen
//     checks that directory's owner and mode).
//   - macOS: ~/Library/Caches/mcpkey/agent.sock, or /tmp/mcpkey-<uid>/agent.sock
//     when that is too long for sun_path (104 bytes).
//   - Windows: %LOCALAPPDATA%\mcpkey\agent.sock (AF_UNIX).
func DefaultSocketPath() (string, error) {
	if p := os.Getenv("MCPKEY_SOCK"); p != "" {
		return p, nil
	}
	return defaultSocketPath()
}

// unixSocketPath is the Linux/BSD rule.
func unixSocketPath(runtimeDir, tempDir string, uid int) string {
	if runtimeDir != "" {
		return filepath.Join(runtimeDir, "mcpkey", "agent.sock")
	}
	return filepath.Join(tempDir, "mcpkey-"+strconv.Itoa(uid), "agent.sock")
}

// darwinSocketPath is the macOS rule.
func darwinSocketPath(home string, uid int) string {
	p := filepath.Join(home, "Library", "Caches", "mcpkey", "agent.sock")
	if home == "" || len(p) >= maxSunPathDarwin {
		return filepath.Join("/tmp", "mcpkey-"+strconv.Itoa(uid), "agent.sock")
	}
	return p
}

// maxSunPathDarwin is sizeof(sun_path) on macOS, NUL included.
const maxSunPathDarwin = 104

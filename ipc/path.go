package ipc

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
)

// DefaultSocketPath returns the agent's socket path: $MCPKEY_SOCK when set,
// else per system:
//
//   - Linux and other Unix: $XDG_RUNTIME_DIR/mcpkey/agent.sock; without
//     XDG_RUNTIME_DIR (hosts strip it), /run/user/<uid>/mcpkey/agent.sock
//     when /run/user/<uid> is a directory of ours closed to others (what
//     XDG_RUNTIME_DIR is on systemd machines); else <temp
//     dir>/mcpkey-<uid>/agent.sock (Listen checks that directory's owner
//     and mode without following links).
//   - macOS: ~/Library/Caches/mcpkey/agent.sock, or /tmp/mcpkey-<uid>/agent.sock
//     when that is too long for sun_path (104 bytes).
//   - Windows: %LOCALAPPDATA%\mcpkey\agent.sock (AF_UNIX).
func DefaultSocketPath() (string, error) { return SocketPathIn(os.Getenv) }

// HostSocketPath returns the socket path that mcpkey derives when an MCP
// host launches it with a stripped environment: only the variables the MCP
// TypeScript SDK's stdio transport passes (getDefaultEnvironment: HOME,
// LOGNAME, PATH, SHELL, TERM and USER on Unix), which Claude Desktop and
// other hosts build on. When it differs from DefaultSocketPath, a host's
// configuration must set MCPKEY_SOCK (see launch.Snippet).
func HostSocketPath() (string, error) { return SocketPathIn(HostEnv(os.Getenv)) }

// SocketPathIn is DefaultSocketPath in the environment getenv.
func SocketPathIn(getenv func(string) string) (string, error) {
	if p := getenv("MCPKEY_SOCK"); p != "" {
		return p, nil
	}
	return defaultSocketPath(getenv)
}

// hostEnvVars are the variables the MCP TypeScript SDK's stdio transport
// passes to a server it launches (DEFAULT_INHERITED_ENV_VARS).
var hostEnvVars = map[bool][]string{
	false: {"HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"},
	true: {"APPDATA", "HOMEDRIVE", "HOMEPATH", "LOCALAPPDATA", "PATH", "PROCESSOR_ARCHITECTURE",
		"SYSTEMDRIVE", "SYSTEMROOT", "TEMP", "USERNAME", "USERPROFILE", "PROGRAMFILES"},
}

// HostEnv returns getenv restricted to what an MCP host passes to the
// stdio servers it launches (see HostSocketPath).
func HostEnv(getenv func(string) string) func(string) string {
	keep := hostEnvVars[runtime.GOOS == "windows"]
	return func(k string) string {
		if slices.Contains(keep, k) {
			return getenv(k)
		}
		return ""
	}
}

// unixSocketPath is the Linux/BSD rule, once the runtime directory (""
// when there is none) is known.
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

// agentLockName is the per-user agent lock's file name: agent.lock, or,
// when HOME is not the account's home directory (tests, `sudo` without
// -H), agent-<hash of HOME>.lock, so that each HOME has its own agent.
func agentLockName() string {
	home := os.Getenv("HOME")
	if runtime.GOOS == "windows" {
		home = os.Getenv("USERPROFILE")
	}
	if u, err := user.Current(); err != nil || home == "" || filepath.Clean(u.HomeDir) == filepath.Clean(home) {
		return "agent.lock"
	}
	sum := sha256.Sum256([]byte(filepath.Clean(home)))
	return "agent-" + hex.EncodeToString(sum[:6]) + ".lock"
}

// HostSocketEnv returns the MCPKEY_SOCK value an MCP host's configuration
// must set so that the programs it launches with a stripped environment
// (HostSocketPath) reach this user's agent, or "" when they find it
// unaided. The agent is the one holding the per-user lock when one runs
// (and MCPKEY_SOCK does not name another), else the one DefaultSocketPath
// names.
func HostSocketEnv() (string, error) {
	sock, err := DefaultSocketPath()
	if err != nil {
		return "", err
	}
	if running, _, ok := RunningAgent(); ok && os.Getenv("MCPKEY_SOCK") == "" {
		sock = running
	}
	host, err := HostSocketPath()
	if err == nil && host == sock {
		return "", nil
	}
	return sock, nil
}

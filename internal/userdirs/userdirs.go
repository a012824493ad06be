// Package userdirs says where mcpkey keeps its files on each OS: the config
// file, state (the audit log, the agent's log). It imports only the
// standard library, so that clients (autostart) and the agent agree.
package userdirs

import (
	"errors"
	"os"
	"path"
	"runtime"
	"strings"
)

// ConfigPath is the config file's default location:
//
//   - Linux and other Unix: $XDG_CONFIG_HOME/mcpkey/config.toml, else
//     ~/.config/mcpkey/config.toml
//   - macOS: ~/Library/Application Support/mcpkey/config.toml
//   - Windows: %AppData%\mcpkey\config.toml
func ConfigPath() (string, error) {
	return configPathFor(runtime.GOOS, os.Getenv, userHome())
}

// StateDir is where mcpkey keeps state such as the audit log:
//
//   - Linux and other Unix: $XDG_STATE_HOME/mcpkey, else ~/.local/state/mcpkey
//   - macOS: ~/Library/Logs/mcpkey
//   - Windows: %LocalAppData%\mcpkey\state
func StateDir() (string, error) {
	return stateDirFor(runtime.GOOS, os.Getenv, userHome())
}

func userHome() string {
	home, _ := os.UserHomeDir()
	return home
}

// The *For functions are the pure logic, for any GOOS, environment and home
// directory. As os.UserConfigDir, but $XDG_CONFIG_HOME (and its state
// sibling) are honoured only when absolute, as the XDG Base Directory
// specification says.

func configPathFor(goos string, getenv func(string) string, home string) (string, error) {
	switch goos {
	case "windows":
		return winDir(getenv, "AppData", "config.toml")
	case "darwin", "ios":
		return homeDir(home, "Library/Application Support/mcpkey/config.toml")
	default:
		return xdgDir(getenv, "XDG_CONFIG_HOME", home, ".config", "mcpkey/config.toml")
	}
}

func stateDirFor(goos string, getenv func(string) string, home string) (string, error) {
	switch goos {
	case "windows":
		return winDir(getenv, "LocalAppData", "state")
	case "darwin", "ios":
		return homeDir(home, "Library/Logs/mcpkey")
	default:
		return xdgDir(getenv, "XDG_STATE_HOME", home, ".local/state", "mcpkey")
	}
}

func xdgDir(getenv func(string) string, env, home, fallback, rel string) (string, error) {
	if base := getenv(env); strings.HasPrefix(base, "/") {
		return path.Join(base, rel), nil
	}
	return homeDir(home, path.Join(fallback, rel))
}

func homeDir(home, rel string) (string, error) {
	if home == "" {
		return "", errors.New("cannot find the home directory ($HOME is not set)")
	}
	return path.Join(home, rel), nil
}

// winDir joins with backslashes, so the result is right whatever OS the
// function runs on (the tests run the Windows cases on Linux).
func winDir(getenv func(string) string, env string, rel ...string) (string, error) {
	base := getenv(env)
	if base == "" {
		return "", errors.New("cannot find the user's application data directory (%" + env + "% is not set)")
	}
	return strings.TrimRight(base, `\/`) + `\mcpkey\` + strings.Join(rel, `\`), nil
}

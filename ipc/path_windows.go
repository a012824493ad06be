package ipc

import (
	"errors"
	"os"
	"path/filepath"
)

func defaultSocketPath(getenv func(string) string) (string, error) {
	dir := getenv("LOCALAPPDATA")
	if dir == "" {
		return "", errors.New("LOCALAPPDATA is not set; set MCPKEY_SOCK")
	}
	return filepath.Join(dir, "mcpkey", "agent.sock"), nil
}

// agentLockDir is where the per-user agent lock lives.
func agentLockDir() (string, error) {
	p, err := defaultSocketPath(os.Getenv)
	return filepath.Dir(p), err
}

package ipc

import (
	"errors"
	"os"
	"path/filepath"
)

func defaultSocketPath() (string, error) {
	dir := os.Getenv("LOCALAPPDATA")
	if dir == "" {
		return "", errors.New("LOCALAPPDATA is not set; set MCPKEY_SOCK")
	}
	return filepath.Join(dir, "mcpkey", "agent.sock"), nil
}

package ipc

import "os"

func defaultSocketPath() (string, error) {
	home, _ := os.UserHomeDir()
	return darwinSocketPath(home, os.Getuid()), nil
}

package safefile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ReadSecret reads a client secret (or passphrase) from a file: the
// whole content, trailing newlines trimmed. A leading "~/" is the home
// directory. The file must not be readable by group or others on Unix, as
// ssh insists for private keys.
func ReadSecret(path string) (string, error) {
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("secret file %s: %w", path, err)
		}
		path = filepath.Join(home, rest)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 && filepath.Separator == '/' {
		return "", fmt.Errorf("secret file %s is readable by others (mode %v); run: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}

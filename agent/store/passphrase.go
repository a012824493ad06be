package store

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// PassphraseEnv may hold the file backend's passphrase. The agent takes it
// out of its environment at start (HidePassphrase), so no child (the
// browser) inherits it and /proc/PID/environ does not show it.
const PassphraseEnv = "MCPKEY_FILE_PASSPHRASE"

// PassphraseFDEnv names a file descriptor to read the file backend's
// passphrase from (MCPKEY_FILE_PASSPHRASE_FD=3 mcpkey agent 3<file, or the
// pipe HidePassphrase hands itself). It is read once and closed.
const PassphraseFDEnv = "MCPKEY_FILE_PASSPHRASE_FD"

// maxPassphrase bounds a passphrase moved through a pipe: a pipe holds at
// least 4096 bytes before a writer blocks, and nobody reads it until after
// the re-exec.
const maxPassphrase = 4096

// TakePassphrase returns the passphrase given in PassphraseFDEnv or
// PassphraseEnv ("" when neither is set), and removes both from the
// environment so children never see them; the descriptor is closed. Call
// it once at start, whether or not the file backend is used, so that the
// descriptor does not leak to children either. Trailing newlines are
// trimmed, as ReadSecretFile does.
func TakePassphrase() (string, error) {
	defer os.Unsetenv(PassphraseEnv)
	defer os.Unsetenv(PassphraseFDEnv)
	if v := os.Getenv(PassphraseFDEnv); v != "" {
		fd, err := strconv.Atoi(v)
		if err != nil || fd < 0 {
			return "", fmt.Errorf("%s=%q is not a file descriptor number", PassphraseFDEnv, v)
		}
		f := os.NewFile(uintptr(fd), "passphrase")
		if f == nil {
			return "", fmt.Errorf("%s=%d: no such file descriptor", PassphraseFDEnv, fd)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 1<<16))
		if err != nil {
			return "", fmt.Errorf("read the passphrase from descriptor %d: %w", fd, err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return "", fmt.Errorf("descriptor %d (%s) held an empty passphrase", fd, PassphraseFDEnv)
		}
		return p, nil
	}
	return strings.TrimRight(os.Getenv(PassphraseEnv), "\r\n"), nil
}

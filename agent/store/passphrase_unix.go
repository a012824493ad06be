//go:build unix

package store

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// HidePassphrase moves a passphrase given in PassphraseEnv out of the
// process's environment block: it writes it into a pipe, and re-executes
// this program (same pid, same arguments) with PassphraseEnv removed and
// PassphraseFDEnv naming the pipe's read end, which TakePassphrase then
// reads. os.Unsetenv alone would not do: /proc/PID/environ shows the block
// the process was started with, readable by the user's other programs. It
// returns only on failure, or at once when PassphraseEnv is not set.
func HidePassphrase() error {
	pw, ok := os.LookupEnv(PassphraseEnv)
	if !ok {
		return nil
	}
	if pw == "" {
		return os.Unsetenv(PassphraseEnv) // nothing secret to hide
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, PassphraseEnv+"=") || strings.HasPrefix(kv, PassphraseFDEnv+"=")
	})
	if len(pw) > maxPassphrase {
		return fmt.Errorf("%s is longer than %d bytes; use --passphrase-file", PassphraseEnv, maxPassphrase)
	}
	var p [2]int
	// No close-on-exec on the read end: it must survive the exec.
	if err := syscall.Pipe(p[:]); err != nil {
		return fmt.Errorf("hide the passphrase: %w", err)
	}
	syscall.CloseOnExec(p[1])
	if _, err := syscall.Write(p[1], []byte(pw)); err != nil {
		return fmt.Errorf("hide the passphrase: %w", err)
	}
	syscall.Close(p[1])
	env = append(env, PassphraseFDEnv+"="+strconv.Itoa(p[0]))
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("hide the passphrase: %w", err)
	}
	return fmt.Errorf("hide the passphrase: re-exec: %w", syscall.Exec(exe, os.Args, env))
}

package ipc

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/windows"
)

var errLockHeld = windows.ERROR_LOCK_VIOLATION

// lockOffset is where the lock's byte range starts: past the record, which
// Windows' mandatory range locks would otherwise keep others from reading.
const lockOffset = 1 << 20

func openAgentLock(dir, name string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE, 0o600)
}

func lockRange(f *os.File, flags uint32) error {
	ol := windows.Overlapped{Offset: lockOffset}
	return windows.LockFileEx(windows.Handle(f.Fd()), flags|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
}

func lockExclusive(f *os.File) error { return lockRange(f, windows.LOCKFILE_EXCLUSIVE_LOCK) }

func isLocked(f *os.File) bool {
	if err := lockRange(f, 0); err != nil {
		return true
	}
	ol := windows.Overlapped{Offset: lockOffset}
	windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, &ol)
	return false
}

func openPrivateFileNoFollow(path string) (*os.File, error) { return os.Open(path) }

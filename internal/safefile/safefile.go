// Package safefile is how mcpkey writes every file of its own: secret
// files, agent.ws.json, the audit and autostart logs, lock files, the units
// `mcpkey install` writes.
//
// A file is created exclusively (O_EXCL, or a fresh temporary file renamed
// into place) with mode 0600, so it never inherits the mode, owner or
// content of a file someone else made. A file that already exists is used
// only when it is a regular file owned by the current user; one owned by
// another user (say a 0666 file planted in /tmp before `mcpkey proxy
// --secret-file` ran) is refused with an error naming its owner, and
// nothing is written to it. Symbolic links are never followed. A file of
// ours with a looser mode is tightened to 0600 through its descriptor.
//
// On Windows the checks on owners and modes are left to the directory's
// ACL (%LOCALAPPDATA% admits only the user).
package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Mode is the mode of every file this package creates.
const Mode fs.FileMode = 0o600

// ErrNotOurs is wrapped by the error for an existing file that is not a
// regular file owned by the current user.
var ErrNotOurs = errors.New("not a regular file of ours")

// Open opens path with flag (os.O_RDONLY, os.O_WRONLY or os.O_RDWR, and
// os.O_APPEND), creating it exclusively with mode 0600 when it does not
// exist. An existing path must be a regular file owned by the current user
// (not a symlink); its mode is tightened to 0600. os.O_TRUNC is refused:
// truncating before the owner check would destroy a file that is not ours.
func Open(path string, flag int) (*os.File, error) {
	if flag&(os.O_TRUNC|os.O_CREATE|os.O_EXCL) != 0 {
		return nil, fmt.Errorf("open %s: safefile.Open takes no O_TRUNC, O_CREATE or O_EXCL", path)
	}
	f, err := os.OpenFile(path, flag|os.O_CREATE|os.O_EXCL|extraFlags, Mode)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	// It exists: open it without following a link (and without blocking
	// on a FIFO someone planted), then judge what we opened, not what the
	// name pointed to a moment earlier.
	f, err = os.OpenFile(path, flag|extraFlags|existingFlags, 0)
	if err != nil {
		if isLinkErr(err) {
			return nil, fmt.Errorf("open %s: %w: it is a symbolic link", path, ErrNotOurs)
		}
		return nil, err
	}
	if err := checkOurs(path, f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// OpenAppend opens path for appending (a log), as Open does.
func OpenAppend(path string) (*os.File, error) {
	return Open(path, os.O_WRONLY|os.O_APPEND)
}

// WriteFile makes path hold data with mode perm (0600 when perm is 0),
// atomically: data goes to a new temporary file created exclusively in the
// same directory, which then replaces path. A path that exists and is not a
// regular file of ours is refused before anything is written.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	if perm == 0 {
		perm = Mode
	}
	if fi, err := os.Lstat(path); err == nil {
		// A symlink of ours is replaced, not followed.
		if fi.Mode().Type() != fs.ModeSymlink || !ownedByUs(fi) {
			if err := checkInfo(path, fi); err != nil {
				return err
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp") // O_EXCL, 0600
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// checkOurs checks an opened file and tightens its mode.
func checkOurs(path string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if err := checkInfo(path, fi); err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(Mode); err != nil {
			return fmt.Errorf("open %s: tighten mode %v to 0600: %w", path, fi.Mode().Perm(), err)
		}
	}
	return nil
}

// CheckDir refuses an existing directory that mcpkey should not write its
// files into: not a directory (a symlink included), owned by another user,
// or writable by group or others (they could swap the files in it). A
// missing directory is fine: the caller creates it 0700.
func CheckDir(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s exists and is %w (%v, not a directory)", path, ErrNotOurs, fi.Mode().Type())
	}
	if !ownedByUs(fi) {
		uid, _ := owner(fi)
		return fmt.Errorf("directory %s belongs to uid %d, not %d: %w", path, uid, os.Geteuid(), ErrNotOurs)
	}
	if _, ok := owner(fi); ok && fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("directory %s is writable by other users (mode %v); run: chmod 700 %s", path, fi.Mode().Perm(), path)
	}
	return nil
}

func ownedByUs(fi fs.FileInfo) bool {
	uid, ok := owner(fi)
	return !ok || uid == os.Geteuid()
}

// checkInfo refuses anything but a regular file owned by the current user.
func checkInfo(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s exists and is %w (%v); refusing to write to it", path, ErrNotOurs, fi.Mode().Type())
	}
	if uid, ok := owner(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("%s exists and belongs to uid %d, not %d: %w; refusing to write to it (remove it or choose another path)", path, uid, os.Geteuid(), ErrNotOurs)
	}
	return nil
}

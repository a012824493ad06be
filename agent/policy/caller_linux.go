package policy

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// procStat is what /proc/PID/stat says about a process's place in the
// process tree and its terminal.
type procStat struct {
	ppid, pgrp, session int
	tty                 uint64 // controlling terminal's device number; 0: none
	start               uint64 // start time in clock ticks after boot (polkit's start-time)
}

// readStat parses /proc/PID/stat: pid (comm) state ppid pgrp session
// tty_nr …; comm may hold spaces and parentheses, so parse after the last ')'.
func readStat(pid int) (procStat, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return procStat{}, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 5 {
		return procStat{}, errors.New("unexpected /proc stat format")
	}
	var n [4]int
	for j := range n {
		if n[j], err = strconv.Atoi(f[j+1]); err != nil {
			return procStat{}, errors.New("unexpected /proc stat format")
		}
	}
	st := procStat{ppid: n[0], pgrp: n[1], session: n[2], tty: uint64(uint32(n[3]))}
	if len(f) > 19 {
		st.start, _ = strconv.ParseUint(f[19], 10, 64)
	}
	return st, nil
}

// readProcess reads one process from /proc: its executable, command line
// and parent pid.
func readProcess(pid int) (Process, int, error) {
	st, err := readStat(pid)
	if err != nil {
		return Process{}, 0, err
	}
	dir := "/proc/" + strconv.Itoa(pid)
	p := Process{PID: pid}
	p.Exe, _ = os.Readlink(dir + "/exe") // unreadable for other users' processes
	if raw, err := os.ReadFile(dir + "/cmdline"); err == nil {
		p.Cmdline = splitCmdline(raw)
	}
	return p, st.ppid, nil
}

// fileID identifies a file by device and inode, as SameFile does.
type fileID struct{ dev, ino uint64 }

// exeID is the device and inode of the executable pid runs, read through
// /proc/PID/exe (the file itself, even if its path was since replaced).
func exeID(pid int) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/exe", &st); err != nil {
		return fileID{}, err
	}
	return fileID{uint64(st.Dev), st.Ino}, nil
}

// pathID is the device and inode of the file at path.
func pathID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, err
	}
	return fileID{uint64(st.Dev), st.Ino}, nil
}

// ttyPath names the terminal device dev (a controlling terminal from
// /proc/PID/stat) and checks that it is a character device that belongs to
// this user: a pseudo-terminal (/dev/pts/N) or a virtual console
// (/dev/ttyN). Other terminals (serial lines) are refused.
func ttyPath(dev uint64) (string, error) {
	major, minor := unix.Major(dev), unix.Minor(dev)
	var p string
	switch {
	case major >= 136 && major <= 143: // UNIX98 pseudo-terminal slaves
		p = "/dev/pts/" + strconv.Itoa(int((major-136)*256+minor))
	case major == 4 && minor >= 1 && minor < 64:
		p = "/dev/tty" + strconv.Itoa(int(minor))
	default:
		return "", fmt.Errorf("terminal %d:%d is neither a pseudo-terminal nor a console", major, minor)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return "", fmt.Errorf("terminal %s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || uint64(st.Rdev) != dev {
		return "", fmt.Errorf("terminal %s is not the device %d:%d", p, major, minor)
	}
	if int(st.Uid) != os.Getuid() {
		return "", fmt.Errorf("terminal %s belongs to uid %d", p, st.Uid)
	}
	return p, nil
}

// writeTTY writes msg to the terminal at path (found by ttyPath), without
// making it the agent's controlling terminal and without blocking on a
// stopped terminal for more than a moment.
func writeTTY(path string, dev uint64, msg string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("open terminal: %w", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || uint64(st.Rdev) != dev || int(st.Uid) != os.Getuid() {
		return fmt.Errorf("terminal %s changed", path)
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return fmt.Errorf("%s is not a terminal", path)
	}
	f.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := f.WriteString(msg); err != nil {
		return fmt.Errorf("write to terminal: %w", err)
	}
	return nil
}

// statKey identifies the regular file f's current content for the
// fingerprint cache.
func statKey(f *os.File) (fpKey, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fpKey{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fpKey{}, errors.New("not a regular file")
	}
	return fpKey{uint64(st.Dev), st.Ino, st.Size, st.Mtim.Nano(), st.Ctim.Nano()}, nil
}

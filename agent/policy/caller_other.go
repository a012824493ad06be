//go:build !linux

package policy

import (
	"errors"
	"os"
)

// readProcess, readStat and the terminal helpers are not implemented
// outside Linux: there the caller is identified by what the transport
// records (uid, pid where the platform offers it, executable path where it
// can be read), without command line, parent chain or terminal, so only the
// agent's own tray (`mcpkey agent --tray`) can answer approvals. macOS would
// need proc_pidinfo/sysctl KERN_PROCARGS2 and Windows the Toolhelp
// snapshot; both are future work.
func readProcess(pid int) (Process, int, error) {
	return Process{}, 0, errors.ErrUnsupported
}

type procStat struct {
	ppid, pgrp, session int
	tty                 uint64
	start               uint64
}

func readStat(pid int) (procStat, error) { return procStat{}, errors.ErrUnsupported }

type fileID struct{ dev, ino uint64 }

func exeID(pid int) (fileID, error)      { return fileID{}, errors.ErrUnsupported }
func pathID(path string) (fileID, error) { return fileID{}, errors.ErrUnsupported }
func ttyPath(dev uint64) (string, error) { return "", errors.ErrUnsupported }
func writeTTY(path string, dev uint64, msg string) error {
	return errors.ErrUnsupported
}

func statKey(f *os.File) (fpKey, error) { return fpKey{}, errors.ErrUnsupported }

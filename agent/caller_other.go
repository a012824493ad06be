//go:build !linux

package agent

import "errors"

// readProcess is not implemented outside Linux: there the caller is
// identified by what the transport records (uid, pid where the platform
// offers it, executable path where it can be read), without command line or
// parent chain. macOS would need proc_pidinfo/sysctl KERN_PROCARGS2 and
// Windows the Toolhelp snapshot; both are future work.
func readProcess(pid int) (Process, int, error) {
	return Process{}, 0, errors.ErrUnsupported
}

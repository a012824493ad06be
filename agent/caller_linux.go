package agent

import (
	"errors"
	"os"
	"strconv"
	"strings"
)

// readProcess reads one process from /proc: its executable, command line
// and parent pid.
func readProcess(pid int) (Process, int, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return Process{}, 0, err
	}
	// pid (comm) state ppid …: comm may hold spaces and parentheses, so
	// parse after the last ')'.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return Process{}, 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return Process{}, 0, errors.New("unexpected /proc stat format")
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return Process{}, 0, errors.New("unexpected /proc stat format")
	}
	p := Process{PID: pid}
	p.Exe, _ = os.Readlink(dir + "/exe") // unreadable for other users' processes
	if raw, err := os.ReadFile(dir + "/cmdline"); err == nil {
		p.Cmdline = splitCmdline(raw)
	}
	return p, ppid, nil
}

//go:build linux

// Command nokeyctl runs a program with the kernel keyring's system calls
// (add_key, keyctl, request_key) refused with EPERM by a seccomp filter, as
// Docker's default seccomp profile refuses them in containers. It is a real
// kernel refusal, not a stand-in: the e2e tests use it to start the agent
// where keyctl is unavailable.
//
// Usage: nokeyctl PROGRAM [ARG...]
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nokeyctl PROGRAM [ARG...]")
		os.Exit(2)
	}
	path, err := exec.LookPath(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "nokeyctl: %v\n", err)
		os.Exit(1)
	}
	// The filter is per thread; execve keeps only the calling thread, so
	// install it and exec on the same locked thread.
	runtime.LockOSThread()
	if err := refuseKeyctl(); err != nil {
		fmt.Fprintf(os.Stderr, "nokeyctl: %v\n", err)
		os.Exit(1)
	}
	err = syscall.Exec(path, os.Args[1:], os.Environ())
	fmt.Fprintf(os.Stderr, "nokeyctl: exec %s: %v\n", path, err)
	os.Exit(1)
}

func refuseKeyctl() error {
	const (
		ldAbs   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq     = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret     = unix.BPF_RET | unix.BPF_K
		retErr  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		retOK   = unix.SECCOMP_RET_ALLOW
		nrField = 0 // offsetof(struct seccomp_data, nr)
	)
	filter := []unix.SockFilter{
		{Code: ldAbs, K: nrField},
		{Code: jeq, Jt: 3, K: unix.SYS_ADD_KEY},
		{Code: jeq, Jt: 2, K: unix.SYS_KEYCTL},
		{Code: jeq, Jt: 1, K: unix.SYS_REQUEST_KEY},
		{Code: ret, K: retOK},
		{Code: ret, K: retErr},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog))); e != 0 {
		return fmt.Errorf("seccomp: %w", e)
	}
	return nil
}

//go:build unix

package ipc

import "syscall"

// detached puts the agent in its own session: no controlling terminal, and
// the caller's Ctrl-C does not reach it.
func detached() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

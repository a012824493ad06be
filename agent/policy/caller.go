package policy

import (
	"fmt"
	"strings"
)

// Limits on what DescribeCaller reads, so a hostile caller cannot make an
// approval prompt (or event) arbitrarily large.
const (
	maxParents    = 12
	maxArgs       = 32
	maxArgLen     = 256
	maxCmdlineLen = 4096
)

// DescribeCaller returns c with Cmdline and Parents filled in from the
// operating system, when c is a local process (a pid) and they are not set
// yet. On Linux they come from /proc/PID/{exe,cmdline,stat}; elsewhere the
// platform offers less (see caller_other.go) and c is returned as is.
// Processes that exited or cannot be read end the chain.
func DescribeCaller(c Caller) Caller {
	if c.PID <= 0 || c.Cmdline != nil {
		return c
	}
	p, ppid, err := readProcess(c.PID)
	if err != nil {
		return c
	}
	if c.Exe == "" {
		c.Exe = p.Exe
	}
	c.Cmdline = p.Cmdline
	for len(c.Parents) < maxParents && ppid > 1 {
		var pp Process
		pp, ppid, err = readProcess(ppid)
		if err != nil {
			break
		}
		c.Parents = append(c.Parents, pp)
	}
	return c
}

// identity is what an approval is remembered for when the caller's
// executable cannot be fingerprinted (see Policy.identityOf): the
// executable path; the transport and client name for WebSocket and proxy
// callers, identified by the secret they presented; the pid as a last resort.
func callerIdentity(c Caller) string {
	switch {
	case c.Exe != "":
		return "exe:" + c.Exe
	case c.Client != "" || c.PID <= 0:
		return c.Transport + ":" + c.Client
	default:
		return fmt.Sprintf("pid:%d", c.PID)
	}
}

// splitCmdline turns /proc/PID/cmdline (NUL-separated) into bounded args.
func splitCmdline(raw []byte) []string {
	if len(raw) > maxCmdlineLen {
		raw = raw[:maxCmdlineLen]
	}
	s := strings.TrimRight(string(raw), "\x00")
	if s == "" {
		return []string{}
	}
	args := strings.Split(s, "\x00")
	if len(args) > maxArgs {
		args = append(args[:maxArgs:maxArgs], "…")
	}
	for i, a := range args {
		if len(a) > maxArgLen {
			args[i] = a[:maxArgLen] + "…"
		}
	}
	return args
}

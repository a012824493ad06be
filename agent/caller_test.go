//go:build linux

package agent_test

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
)

func TestDescribeCaller(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// Start returns once exec has begun; the kernel fills in the new
	// program's arguments a moment later. Wait for them (a real caller has
	// long finished exec when it connects).
	var c agent.Caller
	for deadline := time.Now().Add(5 * time.Second); ; {
		c = agent.DescribeCaller(agent.Caller{Transport: "unix", PID: cmd.Process.Pid})
		if len(c.Cmdline) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond) // polling the child's /proc entry, with a deadline
	}
	if c.Exe == "" || len(c.Cmdline) != 2 || c.Cmdline[0] != "sleep" || c.Cmdline[1] != "30" {
		t.Fatalf("child = exe %q cmdline %q", c.Exe, c.Cmdline)
	}
	self, _ := os.Executable()
	if len(c.Parents) < 2 || c.Parents[0].PID != os.Getpid() || c.Parents[0].Exe != self || c.Parents[1].PID != os.Getppid() {
		t.Fatalf("parents = %+v, want this test (pid %d) then its parent", c.Parents, os.Getpid())
	}
	// A process that is gone leaves the caller as it was.
	gone := agent.Caller{Transport: "unix", PID: 1 << 30, Exe: "/x"}
	if got := agent.DescribeCaller(gone); got.Exe != "/x" || got.Cmdline != nil || got.Parents != nil {
		t.Fatalf("gone = %+v", got)
	}
}

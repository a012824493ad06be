package ipc

import (
	"strings"
	"testing"
)

func TestDarwinSocketPath(t *testing.T) {
	if got := darwinSocketPath("/Users/ann", 501); got != "/Users/ann/Library/Caches/mcpkey/agent.sock" {
		t.Errorf("short home: %q", got)
	}
	long := "/Users/" + strings.Repeat("a", 80)
	if got := darwinSocketPath(long, 501); got != "/tmp/mcpkey-501/agent.sock" {
		t.Errorf("long home: %q", got)
	}
	if got := unixSocketPath("", "/tmp", 7); got != "/tmp/mcpkey-7/agent.sock" {
		t.Errorf("no runtime dir: %q", got)
	}
}

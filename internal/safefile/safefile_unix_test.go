//go:build unix

package safefile_test

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/internal/safefile"
)

func TestOpenAppendRefusesAFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := safefile.OpenAppend(p)
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("OpenAppend accepted a FIFO")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OpenAppend blocked on a FIFO with no reader")
	}
}

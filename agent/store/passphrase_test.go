//go:build unix

package store_test

import (
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/mcpkey/mcpkey/agent/store"
)

// TestTakePassphrase: from a descriptor (read once, closed, trailing
// newline trimmed) or from the environment; both variables are gone
// afterwards, so no child inherits them.
func TestTakePassphrase(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w.WriteString("from a pipe\n")
	w.Close()
	fd, err := syscall.Dup(int(r.Fd())) // TakePassphrase closes it
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(store.PassphraseEnv, "ignored when a descriptor is given")
	t.Setenv(store.PassphraseFDEnv, strconv.Itoa(fd))
	p, err := store.TakePassphrase()
	if err != nil || p != "from a pipe" {
		t.Fatalf("TakePassphrase = %q, %v", p, err)
	}
	for _, v := range []string{store.PassphraseEnv, store.PassphraseFDEnv} {
		if _, ok := os.LookupEnv(v); ok {
			t.Errorf("%s is still set", v)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err == nil {
		t.Error("the descriptor is still open")
	}

	t.Setenv(store.PassphraseEnv, "from the environment")
	if p, err := store.TakePassphrase(); err != nil || p != "from the environment" {
		t.Errorf("TakePassphrase = %q, %v", p, err)
	}
	t.Setenv(store.PassphraseFDEnv, "x")
	if _, err := store.TakePassphrase(); err == nil {
		t.Error("a descriptor that is not a number was accepted")
	}
}

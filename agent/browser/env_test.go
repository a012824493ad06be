package browser

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// envScript writes a program that records its environment to out.
func envScript(t *testing.T, dir, out string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("shell scripts")
	}
	p := filepath.Join(dir, "env-browser")
	script := "#!/bin/sh\nenv > '" + out + ".tmp' && mv '" + out + ".tmp' '" + out + "'\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func waitEnv(t *testing.T, out string) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(out); err == nil {
			return strings.Split(strings.TrimSpace(string(b)), "\n")
		}
		if time.Now().After(deadline) {
			t.Fatal("the browser never ran")
		}
		time.Sleep(5 * time.Millisecond) // polling for the file, with a deadline
	}
}

// TestCallerEnv: a caller's $BROWSER replaces the agent's, its displays are
// set for the browser, and the browser never inherits the passphrase.
func TestCallerEnv(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	prog := envScript(t, dir, out)
	agentEnv := []string{"PATH=/usr/bin:/bin", "DISPLAY=:0", "MCPKEY_FILE_PASSPHRASE=hunter2", "MCPKEY_FILE_PASSPHRASE_FD=3", "MCPKEY_KEYRING_DBUS=1"}
	l := launcher{
		getenv:     func(k string) string { return map[string]string{"BROWSER": "/nonexistent/agent-browser"}[k] },
		environ:    func() []string { return agentEnv },
		euid:       1000,
		defaultCmd: func(string) []string { t.Error("default browser consulted"); return nil },
	}
	ctx := WithEnv(context.Background(), Env{Browser: "/nonexistent/x:" + prog, Display: ":9", WaylandDisplay: "wayland-1"})
	if err := l.open(ctx, "https://x.example/"); err != nil {
		t.Fatal(err)
	}
	env := waitEnv(t, out)
	for _, want := range []string{"DISPLAY=:9", "WAYLAND_DISPLAY=wayland-1", "PATH=/usr/bin:/bin"} {
		if !slices.Contains(env, want) {
			t.Errorf("browser environment lacks %s: %q", want, env)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "MCPKEY_") || strings.Contains(kv, "hunter2") || kv == "DISPLAY=:0" {
			t.Errorf("browser environment has %s", kv)
		}
	}
}

// TestCallerBrowserNeverAsRoot: as root the agent runs no $BROWSER a caller
// sent; its own still works.
func TestCallerBrowserNeverAsRoot(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	prog := envScript(t, dir, out)
	l := launcher{
		getenv:     func(string) string { return "" },
		euid:       0,
		defaultCmd: func(string) []string { t.Error("default browser consulted as root"); return nil },
	}
	ctx := WithEnv(context.Background(), Env{Browser: prog})
	if err := l.open(ctx, "https://x.example/"); !errors.Is(err, ErrCallerBrowserRoot) {
		t.Fatalf("caller's $BROWSER as root: %v, want ErrCallerBrowserRoot", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the caller's $BROWSER ran as root")
	}
	l.getenv = func(k string) string { return map[string]string{"BROWSER": prog}[k] }
	if err := l.open(ctx, "https://x.example/"); err != nil {
		t.Fatalf("the agent's own $BROWSER as root: %v", err)
	}
	waitEnv(t, out)
}

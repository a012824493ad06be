package browser

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestCheckURL(t *testing.T) {
	for _, u := range []string{
		"javascript:alert(1)", "file:///etc/passwd", "data:text/html,hi", "vbscript:x",
		"", "/relative", "https://", "https://x.example/a b", "https://x.example/\n", "-https://x.example",
		"ftp://x.example/",
	} {
		if err := CheckURL(u); err == nil {
			t.Errorf("CheckURL(%q) = nil, want an error", u)
		}
	}
	for _, u := range []string{"https://x.example/authorize?a=1&b=2", "http://127.0.0.1:8080/cb"} {
		if err := CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q) = %v", u, err)
		}
	}
}

// argvScript writes a shell script to dir/name that records its argument
// count and arguments (one per line) to out, atomically.
func argvScript(t *testing.T, dir, name, out string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("shell scripts")
	}
	p := filepath.Join(dir, name)
	script := "#!/bin/sh\nprintf '%s\\n' \"$#\" \"$@\" > '" + out + ".tmp' && mv '" + out + ".tmp' '" + out + "'\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitArgv polls for the file argvScript writes and returns the argv it
// recorded.
func waitArgv(t *testing.T, out string) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(out)
		if err == nil {
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if lines[0] != "1" {
				t.Fatalf("program got %s arguments, want exactly 1: %q", lines[0], lines[1:])
			}
			return lines[1:]
		}
		if time.Now().After(deadline) {
			t.Fatalf("program never ran: %v", err)
		}
		<-tick.C
	}
}

// A URL full of shell metacharacters: a shell anywhere in the path would
// mangle or split it.
const trickyURL = "https://x.example/authorize?a=1&b=$(id)`id`;c|d'e\"f"

func TestBrowserEnvGetsExactlyOneArgv(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "argv")
	prog := argvScript(t, dir, "fake-browser", out)
	t.Setenv("BROWSER", prog)
	if err := Open(context.Background(), trickyURL); err != nil {
		t.Fatal(err)
	}
	if got := waitArgv(t, out); len(got) != 1 || got[0] != trickyURL {
		t.Errorf("argv = %q, want [%q]", got, trickyURL)
	}
}

func TestBrowserEnvPathWithSpacesIsOneProgram(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "My Browser")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "argv")
	prog := argvScript(t, dir, "run it", out)
	t.Setenv("BROWSER", prog)
	if err := Open(context.Background(), "https://x.example/"); err != nil {
		t.Fatal(err)
	}
	if got := waitArgv(t, out); got[0] != "https://x.example/" {
		t.Errorf("argv = %q", got)
	}
}

func TestBrowserEnvListUsesFirstFound(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "argv")
	prog := argvScript(t, dir, "second", out)
	t.Setenv("BROWSER", filepath.Join(dir, "missing")+string(os.PathListSeparator)+prog)
	if err := Open(context.Background(), "https://x.example/list"); err != nil {
		t.Fatal(err)
	}
	if got := waitArgv(t, out); got[0] != "https://x.example/list" {
		t.Errorf("argv = %q", got)
	}

	t.Setenv("BROWSER", filepath.Join(dir, "missing"))
	if err := Open(context.Background(), "https://x.example/"); err == nil {
		t.Error("Open with only a missing $BROWSER program succeeded")
	}
}

func TestRefusesBadSchemesBeforeRunningAnything(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "argv")
	t.Setenv("BROWSER", argvScript(t, dir, "fake-browser", out))
	for _, u := range []string{"javascript:alert(1)", "file:///etc/passwd"} {
		err := Open(context.Background(), u)
		if err == nil || !strings.Contains(err.Error(), "only http and https") {
			t.Errorf("Open(%q) = %v, want a scheme refusal", u, err)
		}
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the browser ran for a refused url (stat: %v)", err)
	}
}

func TestRootNeverLaunchesDefaultBrowser(t *testing.T) {
	called := false
	l := launcher{
		getenv:     func(string) string { return "" },
		euid:       0,
		defaultCmd: func(u string) []string { called = true; return []string{"true", u} },
	}
	err := l.open(context.Background(), "https://x.example/")
	if !errors.Is(err, ErrRoot) {
		t.Errorf("open as root = %v, want ErrRoot", err)
	}
	if called {
		t.Error("the default browser command was consulted as root")
	}
	if os.Geteuid() == 0 {
		t.Setenv("BROWSER", "")
		if err := Open(context.Background(), "https://x.example/"); !errors.Is(err, ErrRoot) {
			t.Errorf("Open as root without $BROWSER = %v, want ErrRoot", err)
		}
	}
}

func TestRootHonoursExplicitBrowser(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "argv")
	prog := argvScript(t, dir, "fake-browser", out)
	l := launcher{
		getenv:     func(k string) string { return map[string]string{"BROWSER": prog}[k] },
		euid:       0,
		defaultCmd: func(string) []string { t.Error("default browser consulted"); return nil },
	}
	if err := l.open(context.Background(), "https://x.example/root"); err != nil {
		t.Fatal(err)
	}
	if got := waitArgv(t, out); got[0] != "https://x.example/root" {
		t.Errorf("argv = %q", got)
	}
}

func TestDefaultBrowserForUsers(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "argv")
	prog := argvScript(t, dir, "xdg-open", out)
	l := launcher{
		getenv:     func(string) string { return "" },
		euid:       1000,
		defaultCmd: func(u string) []string { return []string{prog, u} },
	}
	if err := l.open(context.Background(), trickyURL); err != nil {
		t.Fatal(err)
	}
	if got := waitArgv(t, out); got[0] != trickyURL {
		t.Errorf("argv = %q", got)
	}
	if got := defaultCommand("https://x.example/"); runtime.GOOS == "linux" && (len(got) != 2 || got[0] != "xdg-open") {
		t.Errorf("defaultCommand on linux = %q", got)
	}
}

func TestStub(t *testing.T) {
	var s Stub
	var seen []string
	s.OnOpen = func(_ context.Context, u string) error { seen = append(seen, u); return nil }
	var o Opener = s.Open
	if err := o(context.Background(), "https://a.example/"); err != nil {
		t.Fatal(err)
	}
	if err := o(context.Background(), "javascript:x"); err == nil {
		t.Error("stub accepted javascript:")
	}
	if got := s.URLs(); len(got) != 1 || got[0] != "https://a.example/" {
		t.Errorf("URLs = %q", got)
	}
	if len(seen) != 1 {
		t.Errorf("OnOpen saw %q", seen)
	}
}

package store_test

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// buildProbe compiles testdata/busprobe, a program that imports store.
func buildProbe(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the D-Bus guard only matters on linux")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	bin := filepath.Join(t.TempDir(), "busprobe")
	out, err := exec.Command(goBin, "build", "-o", bin, "./testdata/busprobe").CombinedOutput()
	if err != nil {
		t.Fatalf("build busprobe: %v\n%s", err, out)
	}
	return bin
}

// baseEnv is os.Environ without the variables the guard reads or writes.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "DBUS_SESSION_BUS_ADDRESS", "DISABLE_KWALLET", "MCPKEY_KEYRING_DBUS", "XDG_RUNTIME_DIR", "PATH":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func runProbe(t *testing.T, bin string, env []string, args ...string) map[string]string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("busprobe: %v\n%s", err, stderr.Bytes())
	}
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		vals[k] = v
	}
	return vals
}

// fakeBus listens on a Unix socket and reports, in accept order, the first
// bytes each connection sent.
func fakeBus(t *testing.T) (path string, first <-chan string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "bus")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 64)
			n, _ := c.Read(buf)
			c.Close()
			ch <- string(buf[:n])
		}
	}()
	return path, ch
}

// connectionsBefore dials a sentinel and returns how many connections the
// bus accepted before it (Accept is FIFO, the reader sequential).
func connectionsBefore(t *testing.T, path string, first <-chan string) int {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("SENTINEL")); err != nil {
		t.Fatal(err)
	}
	n := 0
	deadline := time.After(30 * time.Second)
	for {
		select {
		case s := <-first:
			if s == "SENTINEL" {
				return n
			}
			n++
		case <-deadline:
			t.Fatal("the fake bus never saw the sentinel")
		}
	}
}

func TestBusGuard(t *testing.T) {
	bin := buildProbe(t)
	pathEnv := "PATH=/usr/bin:/bin"

	t.Run("GuardedNoDial", func(t *testing.T) {
		sock, first := fakeBus(t)
		addr := "unix:path=" + sock
		env := append(baseEnv(), pathEnv, "DBUS_SESSION_BUS_ADDRESS="+addr, "DISABLE_KWALLET=0")
		got := runProbe(t, bin, env)
		if n := connectionsBefore(t, sock, first); n != 0 {
			t.Errorf("guarded program connected to the session bus %d times, want 0", n)
		}
		want := map[string]string{
			"addr": `"` + addr + `"`, "addr_set": "true",
			"kwallet": `"0"`, "kwallet_set": "true",
			"secret_service": "false", "needs_reexec": "true",
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %s, want %s", k, got[k], v)
			}
		}
	})

	t.Run("MarkerDials", func(t *testing.T) {
		sock, first := fakeBus(t)
		addr := "unix:path=" + sock
		env := append(baseEnv(), pathEnv, "DBUS_SESSION_BUS_ADDRESS="+addr, "MCPKEY_KEYRING_DBUS=1")
		got := runProbe(t, bin, env)
		if n := connectionsBefore(t, sock, first); n == 0 {
			t.Error("with MCPKEY_KEYRING_DBUS=1 keyring's init did not dial the session bus")
		}
		if got["addr"] != `"`+addr+`"` || got["kwallet_set"] != "false" || got["needs_reexec"] != "false" {
			t.Errorf("environment after init with the marker = %v", got)
		}
	})

	// With no bus address godbus runs dbus-launch; the guard must prevent it.
	fakeLaunch := func(t *testing.T) (dir, log string) {
		if _, err := os.Stat("/run/user/" + strconv.Itoa(os.Getuid()) + "/bus"); err == nil {
			t.Skip("a session bus socket exists in /run/user; godbus would use it instead of dbus-launch")
		}
		dir = t.TempDir()
		log = filepath.Join(dir, "calls")
		script := "#!/bin/sh\necho \"dbus-launch $*\" >> '" + log + "'\nexit 1\n"
		if err := os.WriteFile(filepath.Join(dir, "dbus-launch"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return dir, log
	}

	t.Run("GuardedNoLaunch", func(t *testing.T) {
		dir, log := fakeLaunch(t)
		got := runProbe(t, bin, append(baseEnv(), "PATH="+dir+":/usr/bin:/bin"))
		if b, err := os.ReadFile(log); err == nil {
			t.Errorf("guarded program ran dbus-launch: %q", b)
		}
		if got["addr_set"] != "false" || got["kwallet_set"] != "false" {
			t.Errorf("environment not restored to unset: %v", got)
		}
		if got["needs_reexec"] != "false" {
			t.Errorf("needs_reexec = %s with no bus configured, want false", got["needs_reexec"])
		}
	})

	// Control: the same program without the guard does run dbus-launch, so
	// the test above can fail.
	t.Run("MarkerLaunches", func(t *testing.T) {
		dir, log := fakeLaunch(t)
		runProbe(t, bin, append(baseEnv(), "PATH="+dir+":/usr/bin:/bin", "MCPKEY_KEYRING_DBUS=1"))
		if b, err := os.ReadFile(log); err != nil || !bytes.Contains(b, []byte("dbus-launch")) {
			t.Errorf("without the guard dbus-launch was not run (%v); the guard test proves nothing", err)
		}
	})
}

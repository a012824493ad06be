//go:build linux

package agent_test

import (
	"bufio"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/mcpkey/mcpkey/agent"
)

// privateBus starts a dbus-daemon for the test (as dbus-run-session does)
// and returns its address.
func privateBus(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skip("dbus-daemon not installed")
	}
	cmd := exec.Command("dbus-daemon", "--session", "--nofork", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon: %v", err)
	}
	return strings.TrimSpace(line)
}

func TestScreenLockSignalLocks(t *testing.T) {
	addr := privateBus(t)
	for _, iface := range []string{"org.freedesktop.ScreenSaver", "org.gnome.ScreenSaver"} {
		t.Run(iface, func(t *testing.T) {
			a := newPolicyAgent(t, agent.Config{DBusSessionAddress: addr, Settings: &agent.Settings{LockOnScreenLock: true}})
			events := a.Subscribe(t.Context())
			conn, err := dbus.Connect(addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			path := dbus.ObjectPath("/" + strings.ReplaceAll(iface, ".", "/"))
			// The screensaver turning off does not lock.
			if err := conn.Emit(path, iface+".ActiveChanged", false); err != nil {
				t.Fatal(err)
			}
			if err := conn.Emit(path, iface+".ActiveChanged", true); err != nil {
				t.Fatal(err)
			}
			e := waitKind(t, events, agent.EventLocked)
			if e.Message != "screen locked" {
				t.Fatalf("lock reason %q", e.Message)
			}
			if _, err := a.Token(t.Context(), agent.TokenRequest{Server: srvA}); !errors.Is(err, agent.ErrLocked) {
				t.Fatalf("token after screen lock: %v", err)
			}
		})
	}
}

func TestScreenLockFollowsSettings(t *testing.T) {
	addr := privateBus(t)
	a := newPolicyAgent(t, agent.Config{DBusSessionAddress: addr})
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	emit := func() {
		if err := conn.Emit("/org/freedesktop/ScreenSaver", "org.freedesktop.ScreenSaver.ActiveChanged", true); err != nil {
			t.Fatal(err)
		}
	}
	// Turned on by a config reload.
	events := a.Subscribe(t.Context())
	a.ApplySettings(&agent.Settings{LockOnScreenLock: true})
	emit()
	waitKind(t, events, agent.EventLocked)
}

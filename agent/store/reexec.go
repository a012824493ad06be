package store

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/mcpkey/mcpkey/agent/store/internal/busguard"
)

// This init runs after keyring's (store imports keyring), so keyring's
// D-Bus probe has already seen the guard's "disabled:" address; from here
// on the process and its children see the real environment.
func init() { busguard.Restore() }

// ReexecMarker is the environment variable that lets keyring's init reach
// D-Bus: MCPKEY_KEYRING_DBUS=1.
const ReexecMarker = busguard.Marker

// SecretServiceNeedsReexec reports whether opening backend in this process
// needs a re-exec with ReexecEnv: true on Linux when the D-Bus guard was
// active at start, backend is auto (""), secret-service or kwallet, and a
// session bus is configured or discoverable (DBUS_SESSION_BUS_ADDRESS, or
// /run/user/<uid>/bus or dbus-session, or $XDG_RUNTIME_DIR/bus). Without a
// bus a re-exec would only make godbus run dbus-launch, so it reports false
// and Open explains that no bus answered.
func SecretServiceNeedsReexec(backend string) bool {
	if runtime.GOOS != "linux" || !busguard.Active() {
		return false
	}
	switch backend {
	case "", BackendAuto, BackendSecretService, BackendKWallet:
	default:
		return false
	}
	return sessionBusConfigured()
}

func sessionBusConfigured() bool {
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" && a != "autolaunch:" {
		return true
	}
	var candidates []string
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		candidates = append(candidates, filepath.Join(d, "bus"))
	}
	// godbus (2019) looks in /run/user/<uid>, whatever XDG_RUNTIME_DIR says.
	d := filepath.Join("/run/user", strconv.Itoa(os.Getuid()))
	candidates = append(candidates, filepath.Join(d, "bus"), filepath.Join(d, "dbus-session"))
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// ReexecEnv returns os.Environ() with ReexecMarker=1 set, for re-executing
// this program so that keyring's init may reach D-Bus.
func ReexecEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, ReexecMarker+"=")
	})
	return append(env, ReexecMarker+"=1")
}

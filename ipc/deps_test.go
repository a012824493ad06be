package ipc_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientLinksOnlyTheWire: a program that only asks the agent for a token
// links the wire types and the standard library, never the engine. The
// client (ipc) and the tray must not depend on the agent, the keyring and
// D-Bus behind it, a TOML library or the MCP SDK (the tray may use D-Bus
// itself, for notifications).
func TestClientLinksOnlyTheWire(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	engine := []string{
		"github.com/mcpkey/mcpkey/agent",
		"github.com/mcpkey/mcpkey/ipc/server",
		"github.com/99designs/keyring",
		"github.com/BurntSushi/toml",
		"github.com/pelletier/go-toml",
		"github.com/modelcontextprotocol/go-sdk",
	}
	for pkg, also := range map[string][]string{
		"github.com/mcpkey/mcpkey/ipc":           {"github.com/godbus/"},
		"github.com/mcpkey/mcpkey/ipc/mcpremote": {"github.com/godbus/"},
		"github.com/mcpkey/mcpkey/api":           {"github.com/godbus/", "github.com/mcpkey/mcpkey/ipc"},
		"github.com/mcpkey/mcpkey/tray":          nil,
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, bad := range append(also, engine...) {
				if dep == bad || strings.HasPrefix(dep, strings.TrimSuffix(bad, "/")+"/") {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}

package agent_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
)

// A trusted prompt that cannot ask refuses the request at once with a
// sentence saying why; it never waits for, nor falls back to, the tray or
// a terminal. (The prompt asking and answering is e2e TestPolkitApproval,
// with a real polkitd.)
func TestTrustedPromptFailsClosed(t *testing.T) {
	tests := []struct {
		name, approval, bus, want string
	}{
		{"polkit without a system bus", agent.ApprovalPolkit, "off", "polkit: no system bus"},
		{"Touch ID", agent.ApprovalTouchID, "off", "Touch ID approvals are not built yet"},
	}
	if addr := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); strings.HasPrefix(addr, "unix:") {
		// A real bus on which nothing owns org.freedesktop.PolicyKit1 (the
		// test's private session bus stands in for a system bus without
		// polkit).
		tests = append(tests, struct{ name, approval, bus, want string }{"polkit not running", agent.ApprovalPolkit, addr,
			"polkit is not running (nothing owns org.freedesktop.PolicyKit1 on the system bus)"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newPolicyAgent(t, agent.Config{DBusSystemAddress: tt.bus,
				Settings: &agent.Settings{Confirm: true, Approval: tt.approval, ApprovalTimeout: time.Minute}})
			events := a.Subscribe(t.Context())
			start := time.Now()
			_, err := a.Token(callerCtx(t.Context(), exeA, os.Getpid()), agent.TokenRequest{Server: srvA})
			if !errors.Is(err, agent.ErrDenied) || !strings.Contains(err.Error(), "could not be asked (approval = \""+tt.approval+"\")") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Token = %v, want a refusal saying %q", err, tt.want)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Fatalf("the refusal took %s: it waited for another answer", d)
			}
			asked := nextApproval(t, events, agent.EventApprovalRequested)
			if asked.Via != tt.approval {
				t.Fatalf("approval.Via = %q, want %q", asked.Via, tt.approval)
			}
			if ap := nextApproval(t, events, agent.EventApprovalAnswered); ap.Decision != agent.DecisionFailed {
				t.Fatalf("decision = %q, want %q", ap.Decision, agent.DecisionFailed)
			}
		})
	}
}

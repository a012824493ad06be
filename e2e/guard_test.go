package e2e

// Issue 13 items 5 and 10, attacked with real processes: abandoned unlock
// guesses must not dodge the backoff, and a locked agent must refuse
// secret.set, secret.delete and socket.add, as deny rules refuse secret
// writes.

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
)

// TestPolicyUnlockGuessesGivingUpEarly: a guesser that abandons each
// `mcpkey unlock` after 150 ms (the delay used to end with it and free the
// next guess) still gets one passphrase checked per backoff: within 3.5 s,
// the checks at 0 s, 1 s and 3 s at most, not one per attempt.
func TestPolicyUnlockGuessesGivingUpEarly(t *testing.T) {
	e := startPolicyAgent(t, &agent.Settings{})
	if code, out := e.mcpkey(t, "open sesame\n", "lock", "--passphrase"); code != 0 {
		t.Fatalf("lock: %d %s", code, out)
	}
	attempts := 0
	for start := time.Now(); time.Since(start) < 3500*time.Millisecond; attempts++ {
		ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
		cmd := exec.CommandContext(ctx, bin(t, "mcpkey"), "unlock", "--passphrase")
		cmd.Env = append(os.Environ(), "MCPKEY_SOCK="+e.sock, "MCPKEY_NO_AUTOSTART=1")
		cmd.Stdin = strings.NewReader("guess\n")
		cmd.Run()
		cancel()
	}
	checked := strings.Count(e.logs.String(), "unlock refused: wrong passphrase")
	t.Logf("%d attempts, %d passphrases checked", attempts, checked)
	if attempts < 10 || checked > 3 {
		t.Fatalf("%d abandoned guesses had %d passphrases checked in 3.5 s; the backoff allows 3", attempts, checked)
	}
	// The right passphrase still unlocks, once the backoff has passed.
	if code, out := e.mcpkey(t, "open sesame\n", "unlock", "--passphrase"); code != 0 {
		t.Fatalf("unlock: %d %s", code, out)
	}
}

// TestPolicyLockedRefusesWrites: while locked, secret set and rm and socket
// add answer "locked" (exit 5) and change nothing; unlocked, a deny rule
// against the caller refuses secret set and rm too.
func TestPolicyLockedRefusesWrites(t *testing.T) {
	e := startPolicyAgent(t, &agent.Settings{})
	if code, out := e.mcpkey(t, "kept-value\n", "secret", "set", "kept"); code != 0 {
		t.Fatalf("secret set: %d %s", code, out)
	}
	if code, out := e.mcpkey(t, "", "lock"); code != 0 {
		t.Fatalf("lock: %d %s", code, out)
	}
	for _, args := range [][]string{
		{"secret", "set", "planted"},
		{"secret", "rm", "kept"},
		{"socket", "add", "--servers", polA},
	} {
		if code, out := e.mcpkey(t, "planted-value\n", args...); code != 5 || !strings.Contains(out, "locked") {
			t.Errorf("mcpkey %s while locked: exit %d: %s", strings.Join(args, " "), code, out)
		}
	}
	if n := len(e.srv.RestrictedSockets()); n != 0 {
		t.Errorf("%d restricted sockets opened while locked", n)
	}
	if code, out := e.mcpkey(t, "", "unlock"); code != 0 {
		t.Fatalf("unlock: %d %s", code, out)
	}
	if names, _ := e.a.Secrets(t.Context()); strings.Join(names, ",") != "kept" {
		t.Fatalf("secrets after the locked writes: %v, want kept only", names)
	}

	// A deny rule against the calling program covers writes too.
	e.a.ApplySettings(&agent.Settings{Deny: []string{bin(t, "mcpkey")}})
	for _, args := range [][]string{{"secret", "set", "planted"}, {"secret", "rm", "kept"}} {
		if code, out := e.mcpkey(t, "planted-value\n", args...); code != 6 || !strings.Contains(out, "deny rule") {
			t.Errorf("mcpkey %s under a deny rule: exit %d: %s", strings.Join(args, " "), code, out)
		}
	}
	if names, _ := e.a.Secrets(t.Context()); strings.Join(names, ",") != "kept" {
		t.Fatalf("secrets after the denied writes: %v, want kept only", names)
	}
}

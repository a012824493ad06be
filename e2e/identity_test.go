package e2e

// Issue 13 item 3: policy judges the program that asked, not the mcpkey
// it ran. A remembered approval for one script running `mcpkey token` does
// not let another script (even a byte-identical copy) or the same script
// changed through; a deny rule for the shell stops it running `mcpkey
// token`; a deny rule for a program stops it on the WebSocket too.

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
)

// runScript starts `shell script`; the script runs mcpkey token for polA.
func (e *polEnv) runScript(t *testing.T, shell, script string) *progRun {
	t.Helper()
	cmd := exec.Command(shell, script)
	cmd.Env = append(os.Environ(), "MCPKEY="+bin(t, "mcpkey"), "SRV="+polA, "MCPKEY_SOCK="+e.sock, "MCPKEY_NO_AUTOSTART=1")
	return e.start(t, cmd)
}

// noApproval fails if an approval is requested before r ends.
func (e *polEnv) noApproval(t *testing.T, r *progRun) (int, string) {
	t.Helper()
	for {
		select {
		case ev := <-e.events:
			if ev.Kind == agent.EventApprovalRequested {
				t.Fatalf("asked again for %s: %+v", ev.Approval.Caller.Describe(), ev.Approval.Caller.Parents)
			}
		case <-r.done:
			return r.code, r.out.String()
		case <-time.After(20 * time.Second):
			t.Fatalf("%s did not finish", r.cmd.Args)
		}
	}
}

func TestPolicyIdentityIsTheProgramThatAsked(t *testing.T) {
	e := startPolicyAgent(t, &agent.Settings{Confirm: true, ApprovalTimeout: time.Minute, Remember: 8 * time.Hour})
	c := e.client(t)
	script := `"$MCPKEY" token "$SRV" >/dev/null && echo got-token` + "\n"
	b1, b2 := filepath.Join(e.dir, "b1.sh"), filepath.Join(e.dir, "b2.sh")
	for _, p := range []string{b1, b2} {
		if err := os.WriteFile(p, []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("remembered approvals", func(t *testing.T) { rememberedApprovals(t, e, c, b1, b2, script) })
	t.Run("deny rules", func(t *testing.T) { denyRulesCoverTheChain(t, e, b2) })
	checkHygiene(t, e)
}

func rememberedApprovals(t *testing.T, e *polEnv, c *ipc.Client, b1, b2, script string) {
	// b1.sh runs mcpkey token: the approval names b1.sh as the parent;
	// the person approves it and asks to remember.
	r := e.runScript(t, "sh", b1)
	ap := e.approval(t)
	if len(ap.Caller.Parents) == 0 || !slices.Contains(ap.Caller.Parents[0].Cmdline, b1) {
		t.Fatalf("the approval does not name b1.sh: %+v", ap.Caller)
	}
	e.approveInTerminal(t, ap.ID, "--remember")
	if code, out := r.wait(t, 20*time.Second); code != 0 || !strings.Contains(out, "got-token") {
		t.Fatalf("b1.sh after approve: %d %s", code, out)
	}
	// b1.sh again: remembered.
	if code, out := e.noApproval(t, e.runScript(t, "sh", b1)); code != 0 || !strings.Contains(out, "got-token") {
		t.Fatalf("b1.sh remembered: %d %s", code, out)
	}
	// b2.sh, a byte-identical copy, is another program: asked.
	r = e.runScript(t, "sh", b2)
	ap = e.approval(t)
	if !slices.Contains(ap.Caller.Parents[0].Cmdline, b2) {
		t.Fatalf("the approval does not name b2.sh: %+v", ap.Caller)
	}
	refuse(t, c, ap.ID, nil)
	if code, out := r.wait(t, 20*time.Second); code == 0 || strings.Contains(out, "got-token") {
		t.Fatalf("b2.sh got a token: %d %s", code, out)
	}
	// b1.sh changed is not what was approved: asked.
	if err := os.WriteFile(b1, []byte(script+"# changed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.runScript(t, "sh", b1)
	ap = e.approval(t)
	refuse(t, c, ap.ID, nil)
	if code, out := r.wait(t, 20*time.Second); code == 0 || strings.Contains(out, "got-token") {
		t.Fatalf("changed b1.sh got a token: %d %s", code, out)
	}

}

func denyRulesCoverTheChain(t *testing.T, e *polEnv, b2 string) {
	// Without confirm, a deny rule for a shell stops that shell running
	// mcpkey token, and a deny rule for alpha stops alpha on the WebSocket.
	// The shell is a copy of sh of its own, so the rule matches the
	// script's shell and no other ancestor of this test.
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	shell := copyExecutable(t, sh, "denied-sh")
	alpha := buildPolicyProgram(t, "alpha")
	e.a.ApplySettings(&agent.Settings{Deny: []string{shell, alpha}})
	if code, out := e.runScript(t, shell, b2).wait(t, 20*time.Second); code == 0 || !strings.Contains(out, "deny rule") || !strings.Contains(out, shell) {
		t.Fatalf("a shell running mcpkey token under a deny rule for it: %d %s", code, out)
	}
	wsAddr := e.startWS(t)
	if code, out := e.launch(t, alpha, wsAddr, polA).wait(t, 20*time.Second); code != 6 || !strings.Contains(out, "deny rule") {
		t.Fatalf("alpha on the WebSocket under a deny rule: %d %s", code, out)
	}
	// The rules are what stopped them: without them, both get their token.
	e.a.ApplySettings(&agent.Settings{})
	if code, out := e.launch(t, alpha, wsAddr, polA).wait(t, 20*time.Second); code != 0 {
		t.Fatalf("alpha on the WebSocket without the rule: %d %s", code, out)
	}
	if code, out := e.runScript(t, shell, b2).wait(t, 20*time.Second); code != 0 || !strings.Contains(out, "got-token") {
		t.Fatalf("the shell without the rule: %d %s", code, out)
	}
}

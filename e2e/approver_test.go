package e2e

// Issue 13 item 1: with confirm on, an approval must come from a person.
// Each attack below is a real process (or connection) trying to allow the
// approval that alpha is waiting on; each must fail, and alpha gets no
// token. The person's path (mcpkey approve in a terminal of its own, typing
// the code the agent shows there) must keep working.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// startWS serves e's agent on a loopback WebSocket too and returns the
// address ipc.Client dials (the URL, '#', the secret file).
func (e *polEnv) startWS(t *testing.T) string {
	t.Helper()
	secret, err := ipc.NewWebSocketSecret()
	if err != nil {
		t.Fatal(err)
	}
	ws, err := server.NewWebSocketServer(e.srv, server.WebSocketOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	info := filepath.Join(e.dir, "agent.ws.json")
	if err := ipc.WriteWebSocketInfo(info, ipc.WebSocketInfo{URL: ipc.WebSocketURL(ln), Secret: secret, PID: os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); ws.Serve(t.Context(), ln) }()
	t.Cleanup(func() { ln.Close(); <-done })
	return ipc.WebSocketURL(ln) + "#" + info
}

// terminal is a command run by `script` in a pseudo-terminal of its own:
// what the test writes goes to the terminal's input, what the terminal
// shows is collected in screen.
type terminal struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	screen syncBuffer
	done   chan struct{}
	code   int
}

func (e *polEnv) terminal(t *testing.T, shell string, env ...string) *terminal {
	t.Helper()
	return newTerminal(t, shell, append(os.Environ(), append([]string{"SHELL=/bin/sh", "MCPKEY_SOCK=" + e.sock, "MCPKEY_NO_AUTOSTART=1"}, env...)...), e.keep)
}

// newTerminal runs shell with `script` in a pseudo-terminal of its own, in
// the environment env; keep gets what the terminal showed once it ends.
func newTerminal(t *testing.T, shell string, env []string, keep func(string)) *terminal {
	t.Helper()
	tm := &terminal{done: make(chan struct{})}
	tm.cmd = exec.Command("script", "-qefc", shell, "/dev/null")
	tm.cmd.Env = env
	var err error
	if tm.in, err = tm.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	tm.cmd.Stdout, tm.cmd.Stderr = &tm.screen, &tm.screen
	if err := tm.cmd.Start(); err != nil {
		t.Skipf("script (util-linux) cannot run: %v", err)
	}
	go func() {
		defer close(tm.done)
		tm.cmd.Wait()
		tm.code = tm.cmd.ProcessState.ExitCode()
		keep(tm.screen.String())
	}()
	t.Cleanup(func() { tm.cmd.Process.Kill(); <-tm.done })
	return tm
}

// await waits until the screen matches re and returns the match.
func (tm *terminal) await(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	var m []string
	if err := poll(deadline(t, 20*time.Second), 20*time.Millisecond, func() bool {
		m = re.FindStringSubmatch(tm.screen.String())
		return m != nil
	}); err != nil {
		t.Fatalf("the terminal never showed %s:\n%s", re, tm.screen.String())
	}
	return m
}

// awaitN waits until the screen shows re n times and returns the last match.
func (tm *terminal) awaitN(t *testing.T, re *regexp.Regexp, n int) []string {
	t.Helper()
	var m [][]string
	if err := poll(deadline(t, 20*time.Second), 20*time.Millisecond, func() bool {
		m = re.FindAllStringSubmatch(tm.screen.String(), -1)
		return len(m) >= n
	}); err != nil {
		t.Fatalf("the terminal never showed %s %d times:\n%s", re, n, tm.screen.String())
	}
	return m[n-1]
}

func (tm *terminal) typeLine(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(tm.in, s+"\n"); err != nil {
		t.Fatal(err)
	}
}

func (tm *terminal) wait(t *testing.T) (int, string) {
	t.Helper()
	select {
	case <-tm.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the terminal's command did not finish:\n%s", tm.screen.String())
	}
	return tm.code, tm.screen.String()
}

var codeRE = regexp.MustCompile(`type (\d{6}) and Enter`)

// approveInTerminal is the person: `mcpkey approve id` in a terminal of
// its own, typing the code the agent shows there.
func (e *polEnv) approveInTerminal(t *testing.T, id int, args ...string) {
	t.Helper()
	tm := e.terminal(t, strings.Join(append([]string{bin(t, "mcpkey"), "approve", strconv.Itoa(id)}, args...), " "))
	code := tm.await(t, codeRE)[1]
	tm.typeLine(t, code)
	if rc, screen := tm.wait(t); rc != 0 {
		t.Fatalf("mcpkey approve %d in a terminal: exit %d\n%s", id, rc, screen)
	}
}

// attack runs argv with MCPKEY_SOCK set, without a terminal, and returns
// its output (kept for the hygiene check).
func (e *polEnv) attack(t *testing.T, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "MCPKEY_SOCK="+e.sock, "MCPKEY_NO_AUTOSTART=1")
	out, _ := cmd.CombinedOutput()
	e.keep(string(out))
	return string(out)
}

// copyExecutable copies the executable src to a new file named name.
func copyExecutable(t *testing.T, src, name string) string {
	t.Helper()
	body, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(dst, body, 0o700); err != nil {
		t.Fatal(err)
	}
	return dst
}

// client is a protocol client of e's agent from this (the test) process.
func (e *polEnv) client(t *testing.T) *ipc.Client {
	c := &ipc.Client{Path: e.sock}
	t.Cleanup(func() { c.Close() })
	return c
}

// refuse ends a waiting approval with a denial and checks that the asker
// got no token.
func refuse(t *testing.T, c *ipc.Client, id int, r *progRun) {
	t.Helper()
	// Not found: the asker went away (its terminal closed), which cancels.
	if err := c.AnswerApproval(t.Context(), id, agent.DecisionDeny, false); err != nil && !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("deny %d: %v", id, err)
	}
	if r != nil {
		if code, out := r.wait(t, 20*time.Second); code != 6 || strings.Contains(out, "ok ") {
			t.Fatalf("alpha after the attack: exit %d: %s", code, out)
		}
	}
}

func TestPolicyApprovalNeedsAPerson(t *testing.T) {
	e := startPolicyAgent(t, &agent.Settings{Confirm: true, ApprovalTimeout: time.Minute, Remember: 8 * time.Hour})
	wsAddr := e.startWS(t)
	alpha, answer := buildPolicyProgram(t, "alpha"), buildPolicyProgram(t, "answer")
	mcpkey := bin(t, "mcpkey")
	c := e.client(t)

	t.Run("parent", func(t *testing.T) {
		// A shell starts alpha, then becomes the attacker (exec): alpha's
		// parent answers through the protocol.
		tm := e.terminal(t, `"$ALPHA" "$SRV" & read id; exec "$ANSWER" "$id"`, "ALPHA="+alpha, "SRV="+polA, "ANSWER="+answer)
		ap := e.approval(t)
		tm.typeLine(t, strconv.Itoa(ap.ID))
		if s := tm.await(t, regexp.MustCompile(`answer: \w+.*`))[0]; !strings.Contains(s, "answer: denied") || !strings.Contains(s, "parents") {
			t.Fatalf("the asker's parent allowed its approval: %s", s)
		}
		refuse(t, c, ap.ID, nil)
		if _, s := tm.wait(t); strings.Contains(s, "ok ") {
			t.Fatalf("alpha got a token:\n%s", s)
		}
	})

	t.Run("sibling without a terminal", func(t *testing.T) {
		// `alpha & mcpkey approve` from one shell, no terminal.
		sh := exec.Command("sh", "-c", `"$ALPHA" "$SRV" & read id; "$MCPKEY" approve "$id"; echo "approve exit $?"; wait`)
		sh.Env = append(os.Environ(), "ALPHA="+alpha, "SRV="+polA, "MCPKEY="+mcpkey, "MCPKEY_SOCK="+e.sock, "MCPKEY_NO_AUTOSTART=1")
		in, _ := sh.StdinPipe()
		var out syncBuffer
		sh.Stdout, sh.Stderr = &out, &out
		if err := sh.Start(); err != nil {
			t.Fatal(err)
		}
		ap := e.approval(t)
		fmt.Fprintf(in, "%d\n", ap.ID)
		if err := poll(deadline(t, 20*time.Second), 20*time.Millisecond, func() bool { return strings.Contains(out.String(), "approve exit") }); err != nil {
			t.Fatalf("approve never finished: %s", out.String())
		}
		if !strings.Contains(out.String(), "approve exit 1") || !strings.Contains(out.String(), "needs a terminal") {
			t.Fatalf("a sibling without a terminal allowed the approval: %s", out.String())
		}
		refuse(t, c, ap.ID, nil)
		sh.Wait()
		e.keep(out.String())
		if strings.Contains(out.String(), "ok ") {
			t.Fatalf("alpha got a token: %s", out.String())
		}
	})

	t.Run("sibling without a terminal through the protocol", func(t *testing.T) {
		// Not every attacker uses mcpkey approve: alpha's sibling speaks
		// the protocol itself, without a terminal.
		r := e.launch(t, alpha, e.sock, polA)
		ap := e.approval(t)
		if out := e.attack(t, answer, strconv.Itoa(ap.ID)); !strings.Contains(out, "answer: denied") {
			t.Fatalf("a program without a terminal allowed the approval: %s", out)
		}
		refuse(t, c, ap.ID, r)
	})

	t.Run("sibling in the same terminal", func(t *testing.T) {
		// `alpha & mcpkey approve` in one interactive shell: the approver
		// has a terminal, but it is the asker's.
		tm := e.terminal(t, `"$ALPHA" "$SRV" & read id; "$MCPKEY" approve "$id"; echo "approve exit $?"; wait`,
			"ALPHA="+alpha, "SRV="+polA, "MCPKEY="+mcpkey)
		ap := e.approval(t)
		tm.typeLine(t, strconv.Itoa(ap.ID))
		tm.await(t, regexp.MustCompile(`approve exit \d`))
		if s := tm.screen.String(); !strings.Contains(s, "approve exit 6") || !strings.Contains(s, "own session") || codeRE.MatchString(s) {
			t.Fatalf("a sibling on the asker's terminal allowed the approval:\n%s", s)
		}
		refuse(t, c, ap.ID, nil)
		if _, s := tm.wait(t); strings.Contains(s, "ok ") {
			t.Fatalf("alpha got a token:\n%s", s)
		}
	})

	t.Run("detached with setsid", func(t *testing.T) {
		// The approver leaves every process tree: a new session, no terminal.
		r := e.launch(t, alpha, e.sock, polA)
		ap := e.approval(t)
		if out := e.attack(t, "setsid", "-w", mcpkey, "approve", strconv.Itoa(ap.ID)); !strings.Contains(out, "needs a terminal") {
			t.Fatalf("a detached mcpkey approve allowed the approval: %s", out)
		}
		// Speaking the protocol itself after setsid gets no further.
		if out := e.attack(t, "setsid", "-w", answer, strconv.Itoa(ap.ID)); !strings.Contains(out, "answer: denied") || !strings.Contains(out, "no terminal") {
			t.Fatalf("a detached program allowed the approval: %s", out)
		}
		refuse(t, c, ap.ID, r)
	})

	t.Run("detached asker, answered blind from a terminal", func(t *testing.T) {
		// A program in a terminal detaches the asker (setsid -f: another
		// session, not its child) and answers itself. It passes the process
		// checks, so the agent writes a code to its terminal; the program
		// reads keystrokes, not the screen, and can only guess. The third
		// wrong guess denies the request.
		tm := e.terminal(t, `setsid -f "$ALPHA" "$SRV"; read id; for i in 1 2 3; do "$MCPKEY" approve "$id"; echo "approve exit $?"; done; sleep 30`,
			"ALPHA="+alpha, "SRV="+polA, "MCPKEY="+mcpkey)
		ap := e.approval(t)
		tm.typeLine(t, strconv.Itoa(ap.ID))
		for i := 1; i <= 3; i++ {
			codes := tm.awaitN(t, codeRE, i)
			guess := "000000"
			if codes[1] == guess {
				guess = "111111"
			}
			tm.typeLine(t, guess)
			tm.awaitN(t, regexp.MustCompile(`approve exit \d`), i)
		}
		s := tm.screen.String()
		if strings.Count(s, "approve exit 6") != 3 || !strings.Contains(s, "confirmation code") {
			t.Fatalf("a wrong code allowed the approval:\n%s", s)
		}
		// The screen showed the person what asks.
		if !strings.Contains(s, alpha) || !strings.Contains(s, polA) {
			t.Fatalf("the terminal did not show the request:\n%s", s)
		}
		for {
			ev := <-e.events
			if ev.Kind == agent.EventApprovalAnswered && ev.Approval.ID == ap.ID {
				if ev.Approval.Decision != agent.DecisionDeny {
					t.Fatalf("after three wrong codes the approval was %s", ev.Approval.Decision)
				}
				break
			}
		}
	})

	t.Run("a program posing as the tray", func(t *testing.T) {
		// Named mcpkey, run as `mcpkey tray`, and calling itself
		// mcpkey-tray: but not the agent's executable, so not the tray.
		fake := copyExecutable(t, answer, "mcpkey")
		r := e.launch(t, alpha, e.sock, polA)
		ap := e.approval(t)
		if out := e.attack(t, "setsid", "-w", fake, "tray", strconv.Itoa(ap.ID)); !strings.Contains(out, "answer: denied") {
			t.Fatalf("a fake tray allowed the approval: %s", out)
		}
		refuse(t, c, ap.ID, r)
	})

	t.Run("the WebSocket connection that asked", func(t *testing.T) {
		ws := &ipc.Client{Path: wsAddr}
		defer ws.Close()
		got := make(chan error, 1)
		go func() {
			_, err := ws.Token(t.Context(), agent.TokenRequest{Server: polA})
			got <- err
		}()
		ap := e.approval(t)
		if ap.Caller.Transport != "websocket" {
			t.Fatalf("approval caller = %+v, want the websocket", ap.Caller)
		}
		err := ws.AnswerApproval(t.Context(), ap.ID, agent.DecisionAllowOnce, false)
		if !errors.Is(err, agent.ErrDenied) || !strings.Contains(err.Error(), "websocket") {
			t.Fatalf("the WebSocket connection allowed its own approval: %v", err)
		}
		refuse(t, c, ap.ID, nil)
		if err := <-got; !errors.Is(err, agent.ErrDenied) {
			t.Fatalf("websocket token after the attack: %v", err)
		}
	})

	t.Run("a person in another terminal", func(t *testing.T) {
		r := e.launch(t, alpha, e.sock, polA)
		ap := e.approval(t)
		e.approveInTerminal(t, ap.ID)
		if code, out := r.wait(t, 20*time.Second); code != 0 || !strings.HasPrefix(out, "ok ") {
			t.Fatalf("alpha after the person approved: %d %s", code, out)
		}
	})
	checkHygiene(t, e)
}

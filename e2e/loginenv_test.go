package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/browser"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/ipc"
)

// recordingBrowser writes a $BROWSER that records its environment in out
// (one VAR=value per line) and then signs in through autobrowser (the path
// given, or the one TestMain built).
func recordingBrowser(t *testing.T, dir, out string, autobrowser ...string) string {
	t.Helper()
	p := filepath.Join(dir, "recording-browser")
	auto := bin(t, "autobrowser")
	if len(autobrowser) > 0 {
		auto = autobrowser[0]
	}
	script := "#!/bin/sh\nenv > '" + out + ".tmp' && mv '" + out + ".tmp' '" + out + "'\nexec '" + auto + "' \"$1\"\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func readEnvFile(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the browser's environment was not recorded: %v", err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// TestLoginUsesTheCallersBrowser (issue 12 §6): with an agent already
// running (its own $BROWSER cannot open anything), `BROWSER=x DISPLAY=:77
// mcpkey login` opens x, with the caller's display, as gpg-agent's
// updatestartuptty does. It runs as a normal user: root never runs a
// caller's $BROWSER.
func TestLoginUsesTheCallersBrowser(t *testing.T) {
	u := newFreshUser(t, "autobrowser")
	u.env = append(u.env, "BROWSER=/nonexistent/agent-browser", "MCPKEY_BACKEND=memory")
	u.startAgent(t)
	as := oauthtest.New(t, oauthtest.Options{ScopesSupported: []string{"mcp:tools"}, AccessTokenTTL: time.Hour})
	out := filepath.Join(u.home, "browser.env")
	rec := recordingBrowser(t, u.dir, out, filepath.Join(u.dir, "autobrowser"))
	r := u.runEnv(t, []string{"BROWSER=" + rec, "DISPLAY=:77", "WAYLAND_DISPLAY=wayland-77"}, "login", as.MCPURL)
	if r.Code != 0 {
		t.Fatalf("login with the caller's $BROWSER: exit %d\n%s", r.Code, r.Stderr)
	}
	env := readEnvFile(t, out)
	for _, want := range []string{"DISPLAY=:77", "WAYLAND_DISPLAY=wayland-77"} {
		if !slices.Contains(env, want) {
			t.Errorf("the browser did not get the caller's %s: %q", want, env)
		}
	}
	if r := u.run(t, "token", as.MCPURL); r.Code != 0 {
		t.Errorf("token after the login: exit %d\n%s", r.Code, r.Stderr)
	}
}

// TestLoginEnvOnlyFromTheMainSocket: a restricted socket (what `ssh -R`
// forwards) refuses session.login whatever environment it carries, and a
// WebSocket caller's $BROWSER is ignored: the agent falls back to its own
// (which cannot open anything here), and the caller's program never runs.
func TestLoginEnvOnlyFromTheMainSocket(t *testing.T) {
	a := startAgentWith(t, "/nonexistent/agent-browser", []string{"MCPKEY_BACKEND=memory"}, "--backend", "memory", "--ws")
	as := oauthtest.New(t, oauthtest.Options{ScopesSupported: []string{"mcp:tools"}, AccessTokenTTL: time.Hour})
	dir := t.TempDir()
	out := filepath.Join(dir, "browser.env")
	rec := recordingBrowser(t, dir, out)
	ctx := deadline(t, 60*time.Second)

	restricted := filepath.Join(filepath.Dir(a.Sock), "r.sock")
	a.mustRun(t, 20*time.Second, "socket", "add", "--servers", as.MCPURL, "--path", restricted)
	err := (&agentProc{Sock: restricted}).call(ctx, "session.login",
		map[string]any{"server": as.MCPURL, "env": map[string]string{"BROWSER": rec}}, nil)
	var re *rpcError
	if !errors.As(err, &re) || re.Data.Code != "denied" {
		t.Errorf("session.login on a restricted socket: %v, want denied", err)
	}

	c := &ipc.Client{Path: a.Sock, WebSocket: true}
	defer c.Close()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var fellBack bool
	_, err = c.Login(lctx, agent.LoginRequest{Server: as.MCPURL, Env: browser.Env{Browser: rec}}, func(e agent.Event) {
		if e.ShowURL && e.URL != "" { // the agent's own browser failed: the caller shows the URL
			fellBack = true
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || !fellBack {
		t.Errorf("WebSocket login: %v (agent's own browser tried: %v), want it cancelled after the agent's browser failed", err, fellBack)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("the agent ran a $BROWSER sent over the WebSocket")
	}
	if !strings.Contains(a.p.stderr.String(), "ignoring a login caller's environment") {
		t.Errorf("the agent did not log that it ignored the WebSocket caller's environment")
	}
}

// TestFilePassphraseLeavesTheEnvironment (issue 13.6): MCPKEY_FILE_PASSPHRASE
// given to the agent is in neither its /proc/PID/environ (readable by the
// user's other programs) nor the browser it starts; the file backend still
// opens with it, and opens again after a restart.
func TestFilePassphraseLeavesTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "browser.env")
	rec := recordingBrowser(t, dir, out)
	pass := "pp-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	data := filepath.Join(dir, "data")
	env := []string{"MCPKEY_FILE_PASSPHRASE=" + pass, "XDG_DATA_HOME=" + data}
	a := startAgentWith(t, rec, env, "--backend", "file")
	environ, err := os.ReadFile("/proc/" + strconv.Itoa(a.p.cmd.Process.Pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(environ), pass) || strings.Contains(string(environ), "MCPKEY_FILE_PASSPHRASE=") {
		t.Error("the passphrase is in the agent's /proc/PID/environ")
	}
	as := oauthtest.New(t, oauthtest.Options{ScopesSupported: []string{"mcp:tools"}, AccessTokenTTL: time.Hour})
	a.mustRun(t, 30*time.Second, "login", as.MCPURL)
	for _, kv := range readEnvFile(t, out) {
		if strings.Contains(kv, pass) || strings.HasPrefix(kv, "MCPKEY_FILE_PASSPHRASE") {
			t.Errorf("the browser inherited %s", strings.ReplaceAll(kv, pass, "<passphrase>"))
		}
	}
	a.p.stop()
	b := startAgentWith(t, rec, env, "--backend", "file")
	if r := b.run(t, 20*time.Second, "token", as.MCPURL); r.Code != 0 {
		t.Errorf("token after a restart with the same passphrase: exit %d\n%s", r.Code, r.Stderr)
	}
	// A wrong one is still refused: the passphrase really is used (with
	// the agent stopped: a second one for the same user would be refused
	// before it reads any passphrase).
	b.p.stop()
	wdir := filepath.Join(dir, "w")
	os.Mkdir(wdir, 0o700)
	c := exec.Command(bin(t, "mcpkey"), "agent", "--socket", filepath.Join(wdir, "w.sock"), "--backend", "file")
	c.Env = append(slices.Clone(b.Env), "MCPKEY_FILE_PASSPHRASE=wrong")
	if outb, err := c.CombinedOutput(); err == nil || !strings.Contains(string(outb), "wrong passphrase") {
		t.Errorf("agent with a wrong passphrase: %v\n%s", err, outb)
	}
}

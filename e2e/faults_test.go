package e2e

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/agent/store"
)

// publicCopy copies a built binary into a fresh world-readable directory,
// so that another user can run it (TestMain's directory is 0700).
func publicCopy(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(bin(t, name))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "mkpub")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// asNobody returns the argv prefix that runs a command as uid and gid
// 65534 with no supplementary groups; it skips t unless running as root.
func asNobody(t testing.TB) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "running a command as another user needs root (CI runs as root)")
	}
	p, err := exec.LookPath("setpriv")
	if err != nil {
		skipOrFail(t, "setpriv missing (util-linux)")
	}
	return []string{p, "--reuid", "65534", "--regid", "65534", "--clear-groups"}
}

// TestLoginForgedCallbackFromAnotherUser (issue 13 item 12): while the
// browser is open, another user reads its argv from /proc, learns what it
// can (the state, from the URL or from whatever the URL redirects to) and
// sends the forged ?error=access_denied callback that used to end the
// login. The login still completes, and the other user never learned the
// state.
func TestLoginForgedCallbackFromAnotherUser(t *testing.T) {
	nobody := asNobody(t)
	thief := publicCopy(t, "argvthief")
	as := oauthtest.New(t, oauthtest.Options{AccessTokenTTL: time.Hour})

	// The browser: records its pid, waits (bounded) until the attack is
	// over, then signs in as autobrowser does. Its argv holds the URL.
	dir := t.TempDir()
	pidFile, goFile := filepath.Join(dir, "pid"), filepath.Join(dir, "go")
	script := filepath.Join(dir, "browser")
	os.WriteFile(script, []byte("#!/bin/sh\necho $$ > "+pidFile+".tmp && mv "+pidFile+".tmp "+pidFile+
		"\ni=0\nwhile [ ! -e "+goFile+" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\nexec "+
		bin(t, "autobrowser")+" \"$1\"\n"), 0o755)
	a := startAgent(t, script)

	login := exec.Command(bin(t, "mcpkey"), "login", as.MCPURL)
	login.Env = a.Env
	var loginOut syncBuffer
	login.Stdout, login.Stderr = &loginOut, &loginOut
	if err := login.Start(); err != nil {
		t.Fatal(err)
	}
	loginDone := make(chan error, 1)
	go func() { loginDone <- login.Wait() }()
	t.Cleanup(func() { login.Process.Kill() })

	ctx := deadline(t, 30*time.Second)
	var pid []byte
	if err := poll(ctx, 20*time.Millisecond, func() bool {
		pid, _ = os.ReadFile(pidFile)
		return len(pid) > 0
	}); err != nil {
		t.Fatalf("the browser never started: %v\n%s", err, loginOut.String())
	}
	cmd := exec.CommandContext(ctx, nobody[0], append(nobody[1:], thief, strings.TrimSpace(string(pid)))...)
	attack, err := cmd.CombinedOutput()
	t.Logf("attacker (uid 65534):\n%s", attack)
	if err != nil {
		t.Fatalf("attacker: %v", err)
	}
	if !bytes.Contains(attack, []byte("argv url: http://127.0.0.1:")) || !bytes.Contains(attack, []byte("forged callback:")) {
		t.Fatalf("the attack did not run as planned")
	}
	os.WriteFile(goFile, nil, 0o644)

	select {
	case err := <-loginDone:
		if err != nil {
			t.Fatalf("login ended by the forged callback: %v\n%s", err, loginOut.String())
		}
	case <-ctx.Done():
		t.Fatalf("login did not finish\n%s", loginOut.String())
	}
	if bytes.Contains(attack, []byte("learned state: yes")) {
		t.Error("another user learned the login's state")
	}
	if tok := a.mustRun(t, 20*time.Second, "token", as.MCPURL); !as.ValidAccessToken(strings.TrimSpace(tok.Stdout)) {
		t.Error("the token after the login is not valid at the resource")
	}
}

// TestLogoutInterruptedRemovesSession (issue 12 §7): the revocation
// endpoint hangs; `mcpkey logout` is interrupted (SIGINT) while it waits.
// The session is gone at once (ls, token), and the agent's revocation,
// which goes on without the CLI, gives up within its bound.
func TestLogoutInterruptedRemovesSession(t *testing.T) {
	const revokeBound = 10 * time.Second // agent.revokeTimeout
	started, ended := make(chan time.Time, 4), make(chan time.Time, 4)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // then net/http notices the client hanging up
		started <- time.Now()
		<-r.Context().Done() // never answers; sees the agent give up
		ended <- time.Now()
	}))
	t.Cleanup(hang.Close)
	as := oauthtest.New(t, oauthtest.Options{AccessTokenTTL: time.Hour, Metadata: func(m map[string]any) {
		m["revocation_endpoint"] = hang.URL + "/revoke"
	}})
	a := startAgent(t, bin(t, "autobrowser"))
	a.mustRun(t, 30*time.Second, "login", as.MCPURL)

	ctx := deadline(t, 60*time.Second)
	logout := exec.Command(bin(t, "mcpkey"), "logout", as.MCPURL)
	logout.Env = a.Env
	var out syncBuffer
	logout.Stdout, logout.Stderr = &out, &out
	if err := logout.Start(); err != nil {
		t.Fatal(err)
	}
	var revokeStart time.Time
	select {
	case revokeStart = <-started:
	case <-ctx.Done():
		logout.Process.Kill()
		t.Fatalf("the revocation request never came\n%s", out.String())
	}
	if err := logout.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	logout.Wait()
	interrupted := time.Now()

	if ss := a.list(t); len(ss) != 0 {
		t.Errorf("after the interrupted logout, ls shows %d sessions, want 0\nlogout said: %s", len(ss), out.String())
	}
	if r := a.run(t, 20*time.Second, "token", as.MCPURL); r.Code == 0 {
		t.Errorf("token still served after the interrupted logout")
	}
	if time.Since(interrupted) > 2*time.Second {
		t.Errorf("checking took %v: the session was not gone at once", time.Since(interrupted))
	}
	select {
	case end := <-ended:
		if d := end.Sub(revokeStart); d > revokeBound+3*time.Second {
			t.Errorf("the agent's revocation gave up after %v, want within %v", d, revokeBound)
		}
	case <-time.After(revokeBound + 5*time.Second):
		t.Errorf("the agent's revocation was still hanging %v after it started", time.Since(revokeStart))
	}
}

// TestCorruptItemAgentStarts (issue 12 §7): with garbage in place of one
// session's access-token item in the file keyring, and a directory in
// place of another one's metadata item, `mcpkey agent` starts, `mcpkey ls`
// lists both as broken and names the items, the third session serves
// tokens, and `mcpkey logout` removes the broken ones (the one without
// readable metadata by the id ls shows).
func TestCorruptItemAgentStarts(t *testing.T) {
	const pass = "corrupt item test"
	const good, bad, nameless = "https://good.example.com/mcp", "https://bad.example.com/mcp", "https://nameless.example.com/mcp"
	home := t.TempDir()
	putFileSessions(t, home, pass, good, bad, nameless)
	dir := filepath.Join(home, ".local", "share", "mcpkey", "keyring")
	itemFile := func(item string) string {
		return filepath.Join(dir, "mcpkey:"+strings.ReplaceAll(item, "/", "%2F"))
	}
	item := "session/" + store.SessionID(bad, "") + "/access"
	file := itemFile(item)
	if err := os.WriteFile(file, []byte("garbage, not an encrypted item"), 0o600); err != nil {
		t.Fatal(err)
	}
	namelessID := store.SessionID(nameless, "")
	metaFile := itemFile("session/" + namelessID + "/meta")
	if err := os.Remove(metaFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(metaFile, 0o700); err != nil {
		t.Fatal(err)
	}
	a := startAgentIn(t, bin(t, "autobrowser"), home, []string{"MCPKEY_BACKEND=file", "MCPKEY_FILE_PASSPHRASE=" + pass}, "--backend", "file")
	ls0 := a.mustRun(t, 30*time.Second, "ls")
	if !strings.Contains(ls0.Stdout, "(unreadable) "+namelessID) || !strings.Contains(ls0.Stderr, "session/"+namelessID+"/meta") {
		t.Errorf("ls does not show the session with unreadable metadata by its id:\n%s%s", ls0.Stdout, ls0.Stderr)
	}
	a.mustRun(t, 30*time.Second, "logout", namelessID)
	if _, err := os.Stat(metaFile); !os.IsNotExist(err) {
		t.Errorf("the unreadable meta item is still on disk: %v", err)
	}

	ls := a.mustRun(t, 30*time.Second, "ls")
	if !strings.Contains(ls.Stdout, bad) || !strings.Contains(ls.Stdout, "broken") || !strings.Contains(ls.Stderr, item) {
		t.Errorf("ls does not show %s as broken naming %s:\n%s%s", bad, item, ls.Stdout, ls.Stderr)
	}
	if tok := a.mustRun(t, 30*time.Second, "token", good); strings.TrimSpace(tok.Stdout) != "at-"+good {
		t.Errorf("token for the good session = %q", tok.Stdout)
	}
	if r := a.run(t, 30*time.Second, "token", bad); r.Code == 0 || !strings.Contains(r.Stderr, item) {
		t.Errorf("token for the broken session: exit %d, %s; want a failure naming %s", r.Code, r.Stderr, item)
	}
	a.mustRun(t, 30*time.Second, "logout", bad)
	if ss := a.list(t); len(ss) != 1 {
		t.Errorf("after logout: %d sessions, want 1", len(ss))
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("the broken item is still on disk: %v", err)
	}
}

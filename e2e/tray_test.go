package e2e

// The tray (issue 7 §2) through its real D-Bus interface: a private bus, a
// fake StatusNotifierWatcher that receives the registration, dbusmenu
// GetLayout to read the menu and Event(id, "clicked") to click it, and a
// fake notification server. The tray is the real mcpkey binary; the agent
// is a real agent (memory backend) on a temp socket.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/mcpkey/mcpkey/assets"
	trayh "github.com/mcpkey/mcpkey/e2e/tray"
)

// trayBus is a private session bus with a watcher and a notification server.
type trayBus struct {
	bus   *trayh.Bus
	conn  *dbus.Conn
	w     *trayh.Watcher
	notes *trayh.Notifications
}

func startTrayBus(t *testing.T) *trayBus {
	t.Helper()
	bus, err := trayh.StartBus(t)
	if err != nil {
		skipOrFail(t, "no private D-Bus (apt-get install dbus): %v", err)
	}
	conn := bus.Conn(t)
	return &trayBus{bus: bus, conn: conn, w: trayh.StartWatcher(t, conn), notes: trayh.StartNotifications(t, conn)}
}

// env is base with the private bus's address instead of any other.
func (b *trayBus) env(base []string) []string {
	env := slices.DeleteFunc(slices.Clone(base), func(s string) bool { return strings.HasPrefix(s, "DBUS_SESSION_BUS_ADDRESS=") })
	return append(env, "DBUS_SESSION_BUS_ADDRESS="+b.bus.Address)
}

// start runs mcpkey args on the bus and waits for its item to register.
func (b *trayBus) start(t *testing.T, env []string, args ...string) (*proc, *trayh.Item) {
	t.Helper()
	cmd := exec.Command(bin(t, "mcpkey"), args...)
	cmd.Env = b.env(env)
	p := start(t, "mcpkey "+args[0], cmd, nil)
	ctx := deadline(t, 30*time.Second)
	name, err := b.w.Wait(ctx)
	if err != nil {
		t.Fatalf("%v\n%s", err, p.stderr.String())
	}
	return p, trayh.NewItem(b.conn, name)
}

// waitMenu polls the menu until cond holds, and returns its lines.
func waitMenu(t *testing.T, it *trayh.Item, what string, cond func(lines []string) bool) ([]trayh.MenuItem, []string) {
	t.Helper()
	ctx := deadline(t, 60*time.Second)
	var items []trayh.MenuItem
	var lines []string
	err := poll(ctx, 50*time.Millisecond, func() bool {
		m, err := it.Menu()
		if err != nil {
			return false
		}
		items, lines = m, trayh.Lines(m)
		return cond(lines)
	})
	if err != nil {
		t.Fatalf("menu never showed %s; last:\n%s", what, strings.Join(lines, "\n"))
	}
	return items, lines
}

func has(want ...string) func([]string) bool {
	return func(lines []string) bool {
		for _, w := range want {
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, w) }) {
				return false
			}
		}
		return true
	}
}

// click clicks the item labelled exactly label.
func click(t *testing.T, it *trayh.Item, items []trayh.MenuItem, label string) {
	t.Helper()
	m, ok := trayh.Find(items, func(l string) bool { return l == label })
	if !ok {
		t.Fatalf("no menu item %q in\n%s", label, strings.Join(trayh.Lines(items), "\n"))
	}
	if err := it.Click(m.ID); err != nil {
		t.Fatalf("click %q: %v", label, err)
	}
}

// clickQuit clicks Quit, which may end the process before it replies.
func clickQuit(t *testing.T, it *trayh.Item, items []trayh.MenuItem) {
	t.Helper()
	m, ok := trayh.Find(items, func(l string) bool { return l == "Quit" })
	if !ok {
		t.Fatalf("no Quit in\n%s", strings.Join(trayh.Lines(items), "\n"))
	}
	if err := it.Click(m.ID); err != nil && !strings.Contains(err.Error(), "disconnected") {
		t.Fatalf("click Quit: %v", err)
	}
}

// waitIcon polls until the item shows png.
func waitIcon(t *testing.T, it *trayh.Item, name string, png []byte) {
	t.Helper()
	want, err := trayh.IconFromPNG(png)
	if err != nil {
		t.Fatal(err)
	}
	ctx := deadline(t, 30*time.Second)
	if err := poll(ctx, 50*time.Millisecond, func() bool {
		got, err := it.Icon()
		return err == nil && got.W == want.W && got.H == want.H && bytes.Equal(got.Pix, want.Pix)
	}); err != nil {
		t.Fatalf("the icon never became %s", name)
	}
}

func waitTooltip(t *testing.T, it *trayh.Item, want string) {
	t.Helper()
	ctx := deadline(t, 30*time.Second)
	var got string
	if err := poll(ctx, 50*time.Millisecond, func() bool {
		got, _ = it.ToolTip()
		return got == want
	}); err != nil {
		t.Fatalf("tooltip = %q, want %q", got, want)
	}
}

func waitNote(t *testing.T, b *trayBus, summary string) trayh.Notification {
	t.Helper()
	ctx := deadline(t, 30*time.Second)
	var n trayh.Notification
	if err := poll(ctx, 50*time.Millisecond, func() bool {
		var ok bool
		n, ok = b.notes.Find(summary)
		return ok
	}); err != nil {
		t.Fatalf("no notification %q; got %+v", summary, b.notes.All())
	}
	return n
}

// privateSocket is a socket path in a fresh 0700 directory (sun_path holds
// only 108 bytes, so not under t.TempDir()).
func privateSocket(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o700)
	return filepath.Join(dir, "agent.sock")
}

func answers(sock string) bool {
	c, err := net.Dial("unix", sock)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// TestTrayStartsAgent: with no agent the tray says so (error icon, "Start
// agent"); clicking Start agent starts one, and the tray connects to it by
// itself. Then Quit ends the tray.
func TestTrayStartsAgent(t *testing.T) {
	b := startTrayBus(t)
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, "run"), 0o700)
	sock := privateSocket(t)
	env := append(baseEnv(home), "MCPKEY_SOCK="+sock, "MCPKEY_BACKEND=memory")
	// Open config and Open log run xdg-open: a stand-in records its argv.
	fake, opened := t.TempDir(), filepath.Join(t.TempDir(), "opened")
	os.WriteFile(filepath.Join(fake, "xdg-open"), []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" >>"+opened+"\n"), 0o755)
	env = slices.DeleteFunc(env, func(s string) bool { return strings.HasPrefix(s, "PATH=") })
	env = append(env, "PATH="+fake+":"+os.Getenv("PATH"))
	config := filepath.Join(home, ".config", "mcpkey", "config.toml")
	os.MkdirAll(filepath.Dir(config), 0o700)
	os.WriteFile(config, nil, 0o600)
	p, it := b.start(t, env, "tray", "--log-level", "debug")

	if title, err := it.Title(); err != nil || title != "mcpkey" {
		t.Errorf("Title = %q, %v", title, err)
	}
	for prop, want := range map[string]any{"Status": "Active", "ItemIsMenu": true, "Menu": dbus.ObjectPath("/StatusNotifierItem/menu")} {
		if v, err := it.Prop(prop); err != nil || v.Value() != want {
			t.Errorf("%s = %v, %v; want %v", prop, v, err, want)
		}
	}
	items, lines := waitMenu(t, it, "agent unreachable", has("mcpkey: agent unreachable [x]", "Start agent"))
	if want := []string{"mcpkey: agent unreachable [x]", "Start agent", "---", "Open config", "Open log", "---", "Quit"}; !slices.Equal(lines, want) {
		t.Errorf("menu:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	waitIcon(t, it, "error", assets.IconError)
	waitTooltip(t, it, "mcpkey: agent unreachable")

	click(t, it, items, "Start agent")
	// The agent the tray started is detached: stop it by the pid it reports.
	t.Cleanup(func() {
		var st struct{ PID int }
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if (&agentProc{Sock: sock}).call(ctx, "agent.status", nil, &st) == nil && st.PID > 0 {
			syscall.Kill(st.PID, syscall.SIGTERM)
		}
	})
	_, lines = waitMenu(t, it, "the started agent", has("mcpkey: 0 sessions [x]"))
	if slices.Contains(lines, "Start agent") {
		t.Errorf("Start agent still offered:\n%s", strings.Join(lines, "\n"))
	}
	if !answers(sock) {
		t.Error("no agent answers on the socket")
	}
	waitIcon(t, it, "ready", assets.IconReady)
	waitTooltip(t, it, "mcpkey: 0 sessions")

	items, _ = waitMenu(t, it, "Quit", has("Quit"))
	click(t, it, items, "Open config")
	click(t, it, items, "Open log")
	// The two clicks run concurrently: compare as sets.
	want := []string{config, filepath.Join(home, ".local", "state", "mcpkey", "agent.log")}
	var got []string
	ctx := deadline(t, 10*time.Second)
	poll(ctx, 20*time.Millisecond, func() bool {
		b, _ := os.ReadFile(opened)
		got = strings.Fields(string(b))
		return len(got) >= 2
	})
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("xdg-open got %q, want %q", got, want)
	}
	clickQuit(t, it, items)
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("tray exited with %v\n%s", p.err, p.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the tray did not exit after Quit")
	}
}

// TestAgentWithTray: "mcpkey agent --tray" serves the socket and shows the
// tray; Quit stops both.
func TestAgentWithTray(t *testing.T) {
	b := startTrayBus(t)
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, "run"), 0o700)
	sock := privateSocket(t)
	env := append(baseEnv(home), "MCPKEY_SOCK="+sock)
	p, it := b.start(t, env, "agent", "--tray", "--backend", "memory", "--socket", sock)
	items, _ := waitMenu(t, it, "the agent's state", has("mcpkey: 0 sessions [x]", "No sessions"))
	if !answers(sock) {
		t.Fatal("the agent does not answer")
	}
	waitIcon(t, it, "ready", assets.IconReady)

	// Lock and Unlock reach the agent.
	a := &agentProc{Sock: sock}
	locked := func() bool {
		var st struct{ Locked bool }
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.call(ctx, "agent.status", nil, &st); err != nil {
			t.Fatalf("agent.status: %v", err)
		}
		return st.Locked
	}
	click(t, it, items, "Lock")
	items, _ = waitMenu(t, it, "Unlock", has("mcpkey: locked, 0 sessions [x]", "Unlock"))
	waitIcon(t, it, "locked", assets.IconLocked)
	waitTooltip(t, it, "mcpkey: locked, 0 sessions")
	if !locked() {
		t.Error("the agent is not locked after Lock")
	}
	click(t, it, items, "Unlock")
	items, _ = waitMenu(t, it, "Lock", has("mcpkey: 0 sessions [x]", "Lock"))
	waitIcon(t, it, "ready", assets.IconReady)
	if locked() {
		t.Error("the agent is still locked after Unlock")
	}

	clickQuit(t, it, items)
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("agent --tray exited with %v\n%s", p.err, p.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("agent --tray did not exit after Quit")
	}
	if answers(sock) {
		t.Error("the socket still answers after Quit")
	}
}

// TestAgentTrayWithoutBus: no session bus: one line on stderr, the agent
// carries on and serves.
func TestAgentTrayWithoutBus(t *testing.T) {
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, "run"), 0o700)
	sock := privateSocket(t)
	cmd := exec.Command(bin(t, "mcpkey"), "agent", "--tray", "--backend", "memory", "--socket", sock)
	cmd.Env = append(baseEnv(home), "MCPKEY_SOCK="+sock) // DBUS_SESSION_BUS_ADDRESS points nowhere
	p := start(t, "agent --tray", cmd, nil)
	ctx := deadline(t, 20*time.Second)
	if err := poll(ctx, 20*time.Millisecond, func() bool { return answers(sock) || isDone(p) }); err != nil || isDone(p) {
		t.Fatalf("the agent did not serve without a bus: %v\n%s", p.err, p.stderr.String())
	}
	a := &agentProc{Sock: sock, Env: cmd.Env}
	if err := a.call(ctx, "sessions.list", nil, nil); err != nil {
		t.Fatalf("sessions.list: %v", err)
	}
	if err := poll(ctx, 20*time.Millisecond, func() bool { return strings.Contains(p.stderr.String(), "no D-Bus session bus") }); err != nil {
		t.Fatalf("stderr does not say there is no bus:\n%s", p.stderr.String())
	}
	if n := strings.Count(p.stderr.String(), "no D-Bus session bus"); n != 1 {
		t.Errorf("said %d times that there is no bus", n)
	}
	if strings.Contains(p.stderr.String(), "panic") {
		t.Errorf("panic:\n%s", p.stderr.String())
	}
	p.stop()
	if p.err != nil {
		t.Errorf("agent exited with %v after SIGTERM", p.err)
	}
}

func isDone(p *proc) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// TestTraySessions: a real session through the tray's eyes. The AS revokes
// the grant: the menu says "needs login", the icon turns amber and a "login
// needed" notification appears; its default action signs in again (the
// agent opens the browser); "Log out and revoke" ends the session at the AS.
func TestTraySessions(t *testing.T) {
	b := startTrayBus(t)
	f, a := loggedIn(t)
	_, it := b.start(t, a.Env, "tray", "--log-level", "debug")
	label := hostPath(f.MCP.Resource)

	waitMenu(t, it, "the session as valid", has(label+": valid "))
	waitIcon(t, it, "ready", assets.IconReady)
	waitTooltip(t, it, "mcpkey: 1 session")

	// invalid_grant on a forced refresh: the agent publishes login.needed.
	if n := f.AS.RevokeGrants(t); n < 1 {
		t.Fatalf("revoked %d grants", n)
	}
	ctx := deadline(t, 30*time.Second)
	err := a.call(ctx, "token.get", map[string]any{"server": f.MCP.URL, "min_ttl_seconds": 3600}, nil)
	var re *rpcError
	if !errors.As(err, &re) || re.Data.Code != "needs_login" {
		t.Fatalf("forced refresh after revocation: %v, want needs_login", err)
	}
	waitMenu(t, it, "needs login", has(label+": needs login", "  Log in again"))
	waitIcon(t, it, "attention", assets.IconAttention)
	waitTooltip(t, it, "mcpkey: 1 session, 1 needs login")
	n := waitNote(t, b, "Login needed for "+label)
	if !slices.Contains(n.Actions, "default") || n.AppName != "mcpkey" {
		t.Errorf("login-needed notification: %+v", n)
	}

	// Its default action starts the login; chromebrowser signs in.
	if err := b.notes.Invoke(n.ID, "default"); err != nil {
		t.Fatal(err)
	}
	waitNote(t, b, "Signed in to "+label)
	items, _ := waitMenu(t, it, "the session valid again", has(label+": valid "))
	waitIcon(t, it, "ready", assets.IconReady)
	if ss := a.list(t); len(ss) != 1 || ss[0].State != "ready" {
		t.Errorf("sessions after the tray's login = %+v", ss)
	}

	// Log out and revoke, from the session's submenu.
	before := f.AS.Stats(t)
	click(t, it, items, "Log out and revoke")
	waitMenu(t, it, "no sessions", has("No sessions"))
	if ss := a.list(t); len(ss) != 0 {
		t.Errorf("sessions after Log out and revoke = %+v", ss)
	}
	if s := f.AS.Stats(t); s.RevocationRequests <= before.RevocationRequests {
		t.Errorf("no revocation request reached the AS: %+v → %+v", before, s)
	}
	// Nothing secret in what the tray sent to the desktop.
	for _, n := range b.notes.All() {
		if strings.Contains(n.Body+n.Summary, "eyJ") {
			t.Errorf("a notification carries a JWT: %+v", n)
		}
	}
}

// TestTrayApproval: with confirm = true a token request waits; the tray
// shows who asks, and "Allow once" in the menu lets the waiting request
// through; the next request waits again and the notification's Deny
// action refuses it.
func TestTrayApproval(t *testing.T) {
	b := startTrayBus(t)
	f, a := loggedIn(t)
	_, it := b.start(t, a.Env, "tray", "--log-level", "debug")
	label := hostPath(f.MCP.Resource)
	waitMenu(t, it, "the session", has(label+": valid "))

	home := strings.TrimPrefix(a.Env[slices.IndexFunc(a.Env, func(s string) bool { return strings.HasPrefix(s, "XDG_CONFIG_HOME=") })], "XDG_CONFIG_HOME=")
	os.MkdirAll(filepath.Join(home, "mcpkey"), 0o700)
	if err := os.WriteFile(filepath.Join(home, "mcpkey", "config.toml"), []byte("confirm = true\nremember = \"10m\"\napproval_timeout = \"60s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := deadline(t, 30*time.Second)
	if err := poll(ctx, 50*time.Millisecond, func() bool { return strings.Contains(a.p.stderr.String(), "config applied") }); err != nil {
		t.Fatalf("the agent never applied the config:\n%s", a.p.stderr.String())
	}

	// The asker is "mcpkey token", a sibling of the tray: a program may not
	// answer its own approval, nor may its children.
	ask := func() (chan result, *exec.Cmd) {
		done := make(chan result, 1)
		cmd := exec.Command(bin(t, "mcpkey"), "token", f.MCP.URL, "--scope", "mcp:tools")
		cmd.Env = a.Env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			err := cmd.Wait()
			r := result{Stdout: stdout.String(), Stderr: stderr.String()}
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				r.Code = ee.ExitCode()
			}
			done <- r
		}()
		t.Cleanup(func() { cmd.Process.Kill() })
		return done, cmd
	}
	done, cmd := ask()
	asks := fmt.Sprintf("[%d] asks for %s", cmd.Process.Pid, label)
	items, lines := waitMenu(t, it, "the approval", has(asks, "  Allow once", "  Allow for 10 min", "  Deny"))
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, asks) && strings.Contains(l, "mcp:tools") }) {
		t.Errorf("the approval does not name the scopes:\n%s", strings.Join(lines, "\n"))
	}
	waitIcon(t, it, "attention", assets.IconAttention)
	n := waitNote(t, b, asks)
	if !slices.Contains(n.Actions, "allow") || !slices.Contains(n.Actions, "deny") {
		t.Errorf("approval notification actions = %v", n.Actions)
	}
	select {
	case r := <-done:
		t.Fatalf("token.get did not wait for the approval: %+v", r)
	default:
	}
	click(t, it, items, "Allow once")
	select {
	case r := <-done:
		if r.Code != 0 || strings.Count(r.Stdout, ".") != 2 {
			t.Fatalf("after Allow once: exit %d, stderr %s", r.Code, r.Stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting token request never returned")
	}
	waitMenu(t, it, "the approval gone", func(lines []string) bool { return !has(asks)(lines) })
	waitIcon(t, it, "ready", assets.IconReady)

	// Allow once is not remembered: the next request waits again; Deny
	// from the notification refuses it.
	done, cmd = ask()
	asks = fmt.Sprintf("[%d] asks for %s", cmd.Process.Pid, label)
	waitMenu(t, it, "the second approval", has(asks))
	n = waitNote(t, b, asks)
	if err := b.notes.Invoke(n.ID, "deny"); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.Code == 0 || r.Stdout != "" {
			t.Fatalf("after Deny: exit %d, stdout %q", r.Code, r.Stdout)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the denied token request never returned")
	}
	waitMenu(t, it, "the second approval gone", func(lines []string) bool { return !has(asks)(lines) })
}

// hostPath is how the tray names a server without a configured name.
func hostPath(resource string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(resource, "https://"), "http://")
	return strings.TrimSuffix(s, "/")
}

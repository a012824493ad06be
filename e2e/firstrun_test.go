package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/internal/safefile/safefiletest"
)

// TestProxySecretFileRefusesAnotherUsersFile (issue 13.8): another user
// pre-creates the secret file 0666 in a shared directory; `mcpkey proxy
// --secret-file` must refuse it, name the owner, and write nothing there.
func TestProxySecretFileRefusesAnotherUsersFile(t *testing.T) {
	a := startAgent(t, "")
	secretFile := filepath.Join(safefiletest.SharedDir(t), "proxy.secret")
	safefiletest.Plant(t, secretFile)
	r := a.run(t, 20*time.Second, "proxy", "--listen", "127.0.0.1:0", "--secret-file", secretFile)
	if r.Code == 0 {
		t.Fatalf("proxy accepted a secret file owned by uid 65534\n%s", r.Stderr)
	}
	if !strings.Contains(r.Stderr, "belongs to uid 65534") {
		t.Errorf("stderr does not name the file's owner:\n%s", r.Stderr)
	}
	if b, err := os.ReadFile(secretFile); err != nil || string(b) != "planted" {
		t.Errorf("the other user's file now holds %q (%v): the secret reached it", b, err)
	}
}

// freshUser is a local user account with nothing set up: a uid no one has
// (so a kernel keyring of its own, with a normal user's 20000-byte quota),
// an empty home, no D-Bus session bus, no keyring daemon. Root (CI) makes
// it with setpriv; the binaries are copied where that uid can reach them.
type freshUser struct {
	uid  int
	dir  string // 0755, holds the binaries and home
	home string
	sock string
	env  []string
}

func newFreshUser(t *testing.T, browser string) *freshUser {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root to act as a fresh user with setpriv (CI runs as root)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		skipOrFail(t, "setpriv missing (util-linux)")
	}
	dir, err := os.MkdirTemp("", "mk-fresh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	u := &freshUser{uid: 200000 + os.Getpid()%50000, dir: dir, home: filepath.Join(dir, "home")}
	for _, name := range []string{"mcpkey", browser} {
		if name == "" {
			continue
		}
		b, err := os.ReadFile(bin(t, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run := filepath.Join(u.home, "run")
	if err := os.MkdirAll(run, 0o700); err != nil {
		t.Fatal(err)
	}
	u.sock = filepath.Join(run, "mcpkey", "agent.sock")
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", u.uid, u.uid), u.home).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	// No DBUS_SESSION_BUS_ADDRESS at all, and no bus in XDG_RUNTIME_DIR:
	// an SSH session on a headless box.
	u.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + u.home, "XDG_RUNTIME_DIR=" + run,
		"XDG_CONFIG_HOME=" + filepath.Join(u.home, ".config"), "XDG_DATA_HOME=" + filepath.Join(u.home, ".local", "share"),
		"XDG_STATE_HOME=" + filepath.Join(u.home, ".local", "state"), "LANG=C.UTF-8", "MCPKEY_NO_AUTOSTART=1",
	}
	if browser != "" {
		u.env = append(u.env, "BROWSER="+filepath.Join(dir, browser))
	}
	t.Cleanup(func() {
		// Its kernel keyring outlives the test otherwise (until reboot).
		exec.Command("setpriv", u.setpriv("keyctl", "clear", "@u")...).Run()
	})
	return u
}

func (u *freshUser) setpriv(args ...string) []string {
	id := strconv.Itoa(u.uid)
	return append([]string{"--reuid", id, "--regid", id, "--clear-groups"}, args...)
}

// command runs the copied mcpkey as the fresh user.
func (u *freshUser) command(args ...string) *exec.Cmd {
	cmd := exec.Command("setpriv", u.setpriv(append([]string{filepath.Join(u.dir, "mcpkey")}, args...)...)...)
	cmd.Env = u.env
	return cmd
}

func (u *freshUser) run(t *testing.T, args ...string) result {
	t.Helper()
	return u.runEnv(t, nil, args...)
}

// runEnv runs mcpkey as the fresh user with more environment (later
// entries win) and waits up to 30 s.
func (u *freshUser) runEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := u.command(args...)
	cmd.Env = append(slices.Clone(cmd.Env), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		r := result{Stdout: stdout.String(), Stderr: stderr.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.Code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return r
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("mcpkey %s did not finish within 30 s\n%s", strings.Join(args, " "), stderr.String())
	}
	return result{}
}

// startAgent starts "mcpkey agent" as the fresh user, with no --backend,
// and waits for its socket to appear.
func (u *freshUser) startAgent(t *testing.T) *proc {
	t.Helper()
	p := start(t, "agent", u.command("agent", "--log-level", "debug"), nil)
	ctx := deadline(t, 20*time.Second)
	if err := poll(ctx, 20*time.Millisecond, func() bool {
		select {
		case <-p.done:
			return true
		default:
		}
		c, err := net.Dial("unix", u.sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		t.Fatalf("agent socket never answered\n%s", p.stderr.String())
	}
	return p
}

// TestFirstRunWithoutAKeyring (issue 12 §8): the README's first command on a
// machine with no D-Bus session bus and no keyring daemon (an SSH session,
// a container, CI), as a fresh user. The agent comes up on the kernel
// keyring and says so where the user looks: the start log, `mcpkey status`
// and the first login. A second login does not repeat it.
func TestFirstRunWithoutAKeyring(t *testing.T) {
	u := newFreshUser(t, "autobrowser")
	as := oauthtest.New(t, oauthtest.Options{ScopesSupported: []string{"mcp:tools"}, AccessTokenTTL: time.Hour})
	p := u.startAgent(t)
	log := p.stderr.String()
	for _, want := range []string{"using the kernel keyring", store.KeyctlNotice, "no D-Bus session bus is set", "backend=keyctl"} {
		if !strings.Contains(log, want) {
			t.Errorf("start log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "disabled at process start") {
		t.Errorf("the start log blames a disabled d-bus:\n%s", log)
	}

	r := u.run(t, "status")
	if r.Code != 0 || !strings.Contains(r.Stdout, "keyctl") || !strings.Contains(r.Stdout, store.KeyctlNotice) {
		t.Errorf("mcpkey status (exit %d) does not show the kernel keyring and its notice:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "of 20000 bytes and ") || !strings.Contains(r.Stdout, "of 200 keys in use") {
		t.Errorf("mcpkey status does not show how much of a normal user's keyctl quota is used:\n%s", r.Stdout)
	}

	r = u.run(t, "login", as.MCPURL)
	if r.Code != 0 {
		t.Fatalf("first login: exit %d\n%s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, store.KeyctlNotice) {
		t.Errorf("the first login does not say where sessions are kept:\n%s", r.Stderr)
	}
	r = u.run(t, "login", as.MCPURL, "--account", "second")
	if r.Code != 0 || strings.Contains(r.Stderr, store.KeyctlNotice) {
		t.Errorf("second login (exit %d) repeats the notice or failed:\n%s", r.Code, r.Stderr)
	}
	if r := u.run(t, "token", as.MCPURL); r.Code != 0 || strings.TrimSpace(r.Stdout) == "" {
		t.Errorf("token after login: exit %d\n%s", r.Code, r.Stderr)
	}
	// The sessions are in that user's kernel keyring, and the agent's
	// restart finds them there.
	p.stop()
	p = u.startAgent(t)
	if r := u.run(t, "token", as.MCPURL); r.Code != 0 {
		t.Errorf("token after an agent restart: exit %d\n%s\n%s", r.Code, r.Stderr, p.stderr.String())
	}
}

// TestFirstRunKeyctlRefused: where the kernel keyring is refused too (a
// container's seccomp profile; here a real seccomp filter), the agent exits
// with today's message: what it tried, why, and the file backend hint. It
// never falls back to plaintext.
func TestFirstRunKeyctlRefused(t *testing.T) {
	home := t.TempDir()
	run := filepath.Join(home, "run")
	os.MkdirAll(run, 0o700)
	cmd := exec.Command(bin(t, "nokeyctl"), bin(t, "mcpkey"), "agent", "--socket", filepath.Join(run, "agent.sock"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_RUNTIME_DIR=" + run,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "XDG_DATA_HOME=" + filepath.Join(home, ".local", "share")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	ctx := deadline(t, 30*time.Second)
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		cmd.Process.Kill()
		t.Fatalf("the agent kept running with keyctl refused:\n%s", stderr.String())
	}
	if err == nil {
		t.Fatalf("the agent started with no keyring at all:\n%s", stderr.String())
	}
	msg := stderr.String()
	for _, want := range []string{"no OS keyring could be opened", "secret-service: ", "kwallet: ", "keyctl: ",
		"no D-Bus session bus is set", "operation not permitted", store.FileBackendHint} {
		if !strings.Contains(msg, want) {
			t.Errorf("agent error lacks %q:\n%s", want, msg)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(home, ".local", "share")); len(ents) != 0 {
		t.Errorf("the agent wrote to %s/.local/share: %v", home, ents)
	}
}

// keyUsage returns the kernel keyring quota use of uid from /proc/key-users:
// bytes used and the byte limit.
func keyUsage(t *testing.T, uid int) (used, max int) {
	t.Helper()
	b, err := os.ReadFile("/proc/key-users")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 5 && f[0] == strconv.Itoa(uid)+":" {
			u, m, _ := strings.Cut(f[4], "/")
			used, _ = strconv.Atoi(u)
			max, _ = strconv.Atoi(m)
			return used, max
		}
	}
	t.Fatalf("uid %d has no line in /proc/key-users", uid)
	return 0, 0
}

// TestFirstRunKeyringFull: with the fresh user's kernel keyring nearly
// full (another program's 19 KB key), a login fails with a message that
// says so and how to get out, and leaves none of the session's items
// behind (those written before the quota ran out are taken back out).
func TestFirstRunKeyringFull(t *testing.T) {
	u := newFreshUser(t, "autobrowser")
	as := oauthtest.New(t, oauthtest.Options{ScopesSupported: []string{"mcp:tools"}, AccessTokenTTL: time.Hour})
	u.startAgent(t)
	used, max := keyUsage(t, u.uid)
	// 600 bytes free: room for the refresh token, not for the whole
	// session, so the login fails after writing part of it.
	filler := max - used - 600
	cmd := exec.Command("setpriv", u.setpriv("sh", "-c", "head -c "+strconv.Itoa(filler)+" /dev/zero | keyctl padd user filler @u >/dev/null")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fill the keyring: %v\n%s", err, out)
	}
	r := u.run(t, "login", as.MCPURL)
	if r.Code == 0 {
		t.Fatalf("login succeeded in a full keyring (%d bytes free)", max-used-filler)
	}
	for _, want := range []string{"credential store full", "quota is used up", "--backend file"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("login error lacks %q:\n%s", want, r.Stderr)
		}
	}
	if r := u.run(t, "list", "--json"); r.Code != 0 || strings.Contains(r.Stdout, as.MCPURL) {
		t.Errorf("list after the failed login (exit %d):\n%s", r.Code, r.Stdout)
	}
	// The client registration stays (the next login reuses it); no part
	// of the session may.
	out, err := exec.Command("setpriv", u.setpriv("keyctl", "show", "@u")...).CombinedOutput()
	if err != nil || strings.Contains(string(out), "mcpkey:session/") || !strings.Contains(string(out), "mcpkey:client/") {
		t.Errorf("the keyring after the failed login (%v):\n%s", err, out)
	}
}

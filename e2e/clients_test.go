package e2e

// The TypeScript and Python clients (ipc/clients, issue 16 §1 and §2) run
// their own test suites (node --test, python3 -m unittest) against a real
// agent on the file backend, signed in through Chromium to the e2e
// authorization server for the go-sdk resource server.

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// clientsAgent starts a fixture and an agent on the file backend (HOME
// home), and signs in to the fixture's MCP server; with dpop also to a
// go-sdk server that takes only DPoP-bound tokens and hands out a new nonce
// on every response it accepts (MCPKEY_TEST_DPOP_SERVER).
func clientsAgent(t *testing.T, dpop bool) (f *fixture, a *agentProc, env []string) {
	t.Helper()
	chromium(t)
	f = startFixture(t)
	home := t.TempDir()
	a = startAgentIn(t, bin(t, "chromebrowser"), home,
		[]string{"MCPKEY_BACKEND=file", "MCPKEY_FILE_PASSPHRASE=clients-e2e-passphrase"}, "--backend", "file")
	a.mustRun(t, 90*time.Second, "login", f.MCP.URL)
	env = append(slices.Clone(a.Env),
		"MCPKEY_TEST_SERVER="+f.MCP.URL,
		"MCPKEY_TEST_AS="+f.AS.Issuer,
		"MCPKEY_TEST_AGENT_HOME="+home,
		"MCPKEY_E2E_REQUIRE=1", // the suites must not skip here
	)
	if dpop {
		// Its own authorization server: the suite counts the first one's grants.
		as := startAS(t)
		srv := startMCPServer(t, as.Issuer, "-dpop", "-rotate-nonce")
		as.AddResource(t, srv.Resource)
		a.mustRun(t, 90*time.Second, "login", srv.URL)
		env = append(env, "MCPKEY_TEST_DPOP_SERVER="+srv.URL)
	}
	return f, a, env
}

// runSuite runs a client's test suite in dir, failing t with its output.
func runSuite(t *testing.T, dir string, env []string, timeout time.Duration, name string, args ...string) {
	t.Helper()
	ctx := deadline(t, timeout)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil || ctx.Err() != nil {
		t.Fatalf("%s %s in %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), dir, err, out)
	}
	t.Logf("%s", out)
}

// TestTypeScriptClient builds the npm package mcpkey with its own tsc and
// runs its tests with Node's test runner.
func TestTypeScriptClient(t *testing.T) {
	node := nodeBin(t)
	dir := filepath.Join(repoRoot, "ipc", "clients", "typescript")
	tsc := filepath.Join(dir, "node_modules", "typescript", "bin", "tsc")
	if _, err := os.Stat(tsc); err != nil {
		skipOrFail(t, "the TypeScript client's devDependencies are missing; run: cd ipc/clients/typescript && npm ci")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		skipOrFail(t, "npm is missing (the package test runs npm pack)")
	}
	runSuite(t, dir, os.Environ(), 2*time.Minute, node, tsc, "-p", "tsconfig.json")
	_, _, env := clientsAgent(t, true)
	// PATH first: npm (for npm pack) runs on this Node too.
	env = append(env, "PATH="+filepath.Dir(node)+string(os.PathListSeparator)+os.Getenv("PATH"))
	tests, _ := filepath.Glob(filepath.Join(dir, "test", "*.test.mjs"))
	if len(tests) == 0 {
		t.Fatalf("no tests in %s/test", dir)
	}
	runSuite(t, dir, env, 5*time.Minute, node, append([]string{"--test", "--test-concurrency=1", "--test-force-exit"}, tests...)...)
}

// TestPythonClient runs the Python module's unittest suite with Debian's
// python3 and python3-httpx, DPoP included.
func TestPythonClient(t *testing.T) {
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		skipOrFail(t, "python3 is missing; run: apt-get install python3 python3-httpx")
	}
	if err := exec.Command(py, "-c", "import httpx").Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		skipOrFail(t, "python3-httpx is missing; run: apt-get install python3-httpx")
	}
	dir := filepath.Join(repoRoot, "ipc", "clients", "python")
	_, _, env := clientsAgent(t, true)
	env = append(env, "PYTHONPATH="+dir, "PYTHONDONTWRITEBYTECODE=1")
	runSuite(t, dir, env, 5*time.Minute, py, "-m", "unittest", "discover", "-v", "-s", "tests", "-t", ".")
}

package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
)

// cliSession starts a private agent and signs it in to an in-process test
// AS (auto-approving; the browser is e2e/cmd/autobrowser) for each account
// given ("" is the default account). It returns the agent and the server URL.
func cliSession(t testing.TB, accounts ...string) (*agentProc, string) {
	t.Helper()
	as := oauthtest.New(t, oauthtest.Options{ScopesSupported: []string{"mcp:tools"}, AccessTokenTTL: time.Hour})
	a := startAgent(t, bin(t, "autobrowser"))
	signIn(t, a, as.MCPURL, accounts...)
	return a, as.MCPURL
}

// signIn runs `mcpkey login server` against a for each account given (""
// is the default account).
func signIn(t testing.TB, a *agentProc, server string, accounts ...string) {
	t.Helper()
	for _, acct := range accounts {
		args := []string{"login", server}
		if acct != "" {
			args = append(args, "--account", acct)
		}
		cmd := exec.Command(bin(t, "mcpkey"), args...)
		cmd.Env = a.Env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mcpkey %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// dbusDaemons counts running dbus-daemon processes.
func dbusDaemons(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(b)) == "dbus-daemon" {
			n++
		}
	}
	return n
}

// TestCLINeverStartsDBus: 99designs/keyring's package init would connect to
// (or, with no bus configured, autolaunch) a D-Bus session bus in every
// process linking it. CLI commands must not: 100 `mcpkey token` runs with no
// bus configured start no dbus-daemon and never run dbus-launch (a recording
// stand-in sits first on PATH, so this fails even where dbus-x11 is absent).
func TestCLINeverStartsDBus(t *testing.T) {
	a, server := cliSession(t, "")
	fake := t.TempDir()
	record := filepath.Join(fake, "calls")
	script := "#!/bin/sh\necho \"$@\" >> " + record + "\nexit 1\n"
	if err := os.WriteFile(filepath.Join(fake, "dbus-launch"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	env := slices.DeleteFunc(slices.Clone(a.Env), func(kv string) bool {
		return strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") || strings.HasPrefix(kv, "PATH=")
	})
	env = append(env, "PATH="+fake+":"+os.Getenv("PATH"))
	before := dbusDaemons(t)
	for i := range 100 {
		cmd := exec.Command(bin(t, "mcpkey"), "token", server)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil || len(strings.TrimSpace(string(out))) < 20 {
			t.Fatalf("run %d: mcpkey token: %v (%d bytes)", i, err, len(out))
		}
	}
	// The other client commands too.
	for _, args := range [][]string{{"status"}, {"list"}, {"version"}, {"help"}} {
		cmd := exec.Command(bin(t, "mcpkey"), args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mcpkey %v: %v\n%s", args, err, out)
		}
	}
	if b, err := os.ReadFile(record); err == nil {
		t.Errorf("dbus-launch was run %d times", strings.Count(string(b), "\n"))
	}
	if after := dbusDaemons(t); after > before {
		t.Errorf("dbus-daemon processes: %d before, %d after", before, after)
	}
}

// rss returns a process's resident set size in bytes.
func rss(t testing.TB, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// BenchmarkAgentIdleRSS reports the idle agent's resident memory with 100
// cached sessions (target: under 20 MB).
func BenchmarkAgentIdleRSS(b *testing.B) {
	accounts := make([]string, 100)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("user%03d", i)
	}
	a, _ := cliSession(b, accounts...)
	cmd := exec.Command(bin(b, "mcpkey"), "list", "--json")
	cmd.Env = a.Env
	out, err := cmd.Output()
	if err != nil || strings.Count(string(out), `"server"`) != 100 {
		b.Fatalf("list: %v, %d sessions", err, strings.Count(string(out), `"server"`))
	}
	// Idle: after the logins the agent returns freed memory to the OS
	// within a few seconds; take the lowest reading over 5 s.
	pid := a.p.cmd.Process.Pid
	low := rss(b, pid)
	ctx := deadline(b, 5*time.Second)
	poll(ctx, 100*time.Millisecond, func() bool { low = min(low, rss(b, pid)); return false })
	b.ResetTimer()
	for range b.N {
		low = min(low, rss(b, pid))
	}
	b.ReportMetric(float64(low)/(1<<20), "RSS-MB")
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(st), "\n") {
		if strings.HasPrefix(l, "Rss") {
			b.Log(l)
		}
	}
}

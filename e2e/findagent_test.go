package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/launch"
)

// envValue returns KEY's value in env.
func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// runAgentBriefly runs `mcpkey agent` with env and args and expects it to
// exit by itself within 20 s, returning its stderr.
func runAgentBriefly(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin(t, "mcpkey"), append([]string{"agent", "--backend", "memory"}, args...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("mcpkey agent %v is still running after 20 s: a second agent for the same user\n%s", args, out)
	}
	return string(out), err
}

// TestSecondAgentRefused: one agent per user. A second `mcpkey agent` on
// another socket path, same user and HOME, refuses to start and names the
// first agent's pid and socket.
func TestSecondAgentRefused(t *testing.T) {
	a := startAgent(t, "true")
	other := privateSocket(t) // another directory, another socket
	out, err := runAgentBriefly(t, a.Env, "--socket", other)
	if err == nil {
		t.Fatalf("the second agent exited 0:\n%s", out)
	}
	pid := strconv.Itoa(a.p.cmd.Process.Pid)
	for _, want := range []string{"already running on " + a.Sock, "pid " + pid, "one agent per user"} {
		if !strings.Contains(out, want) {
			t.Errorf("second agent's message lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Lstat(other); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused agent left a socket at %s: %v", other, err)
	}
	// The first agent is unharmed.
	a.mustRun(t, 10*time.Second, "status")
}

// TestWebSocketInfoSecondAgent: a second agent with --ws on another socket
// in the same directory never overwrites or deletes the first agent's
// agent.ws.json: with the same HOME it is refused; with another HOME (its
// own agent) it writes its own file and removes only that on exit.
func TestWebSocketInfoSecondAgent(t *testing.T) {
	a := startWSAgent(t, "true")
	other := filepath.Join(filepath.Dir(a.Sock), "work.sock")
	if out, err := runAgentBriefly(t, a.Env, "--socket", other, "--ws"); err == nil {
		t.Fatalf("a second agent with the same HOME started:\n%s", out)
	}
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, "run"), 0o700)
	cmd := exec.Command(bin(t, "mcpkey"), "agent", "--backend", "memory", "--socket", other, "--ws")
	cmd.Env = append(baseEnv(home), "MCPKEY_SOCK="+other)
	p := start(t, "second agent", cmd, nil)
	info2 := ipc.WebSocketInfoPath(other)
	if err := poll(deadline(t, 20*time.Second), 20*time.Millisecond, func() bool {
		_, err := ipc.ReadWebSocketInfo(info2)
		return err == nil
	}); err != nil {
		t.Fatalf("the second agent published no %s\n%s", info2, p.stderr.String())
	}
	if got, err := ipc.ReadWebSocketInfo(a.InfoPath); err != nil || got != a.Info {
		t.Fatalf("the first agent's %s after the second started: %+v, %v", a.InfoPath, got, err)
	}
	p.stop()
	if got, err := ipc.ReadWebSocketInfo(a.InfoPath); err != nil || got != a.Info {
		t.Fatalf("the first agent's %s after the second stopped: %+v, %v", a.InfoPath, got, err)
	}
	if _, err := os.Stat(info2); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the second agent left %s: %v", info2, err)
	}
	// The first agent's WebSocket still answers.
	c := &ipc.Client{Path: a.Sock, WebSocket: true}
	defer c.Close()
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("the first agent's WebSocket: %v", err)
	}
}

// desktopConfig is the part of claude_desktop_config.json Claude Desktop
// reads for a stdio server (unknown fields are errors here).
type desktopConfig struct {
	MCPServers map[string]struct {
		Command string            `json:"command"`
		Args    []string          `json:"args"`
		Env     map[string]string `json:"env,omitempty"`
	} `json:"mcpServers"`
}

// TestHostLaunchFindsAgent: `mcpkey config snippet claude-desktop URL`,
// put in a claude_desktop_config.json and launched the way Claude Desktop
// does (the TypeScript SDK's StdioClientTransport: the entry's env over
// getDefaultEnvironment(), i.e. HOME, LOGNAME, PATH, SHELL, TERM and USER;
// no XDG_RUNTIME_DIR, no MCPKEY_SOCK), reaches the agent that is already
// running, with its session: no second agent starts.
func TestHostLaunchFindsAgent(t *testing.T) {
	f, a := loggedIn(t)
	r := a.mustRun(t, 10*time.Second, "config", "snippet", "claude-desktop", f.MCP.URL)
	var cfg desktopConfig
	dec := json.NewDecoder(strings.NewReader(r.Stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil || len(cfg.MCPServers) != 1 {
		t.Fatalf("snippet is not a claude_desktop_config.json with one server (%v):\n%s", err, r.Stdout)
	}
	for name, e := range cfg.MCPServers {
		if name != launch.ServerKey(f.MCP.URL) || !launch.ServerKeyPattern.MatchString(name) {
			t.Errorf("server name %q", name)
		}
		if !filepath.IsAbs(e.Command) || len(e.Args) != 2 || e.Args[0] != "bridge" || e.Args[1] != f.MCP.URL {
			t.Errorf("command %q args %q", e.Command, e.Args)
		}
		// The agent's socket is not where a stripped environment looks.
		if e.Env["MCPKEY_SOCK"] != a.Sock {
			t.Errorf("env = %v, want MCPKEY_SOCK=%s", e.Env, a.Sock)
		}
	}
	if !strings.Contains(r.Stderr, "MCPKEY_SOCK="+a.Sock) {
		t.Errorf("stderr does not say why MCPKEY_SOCK is set:\n%s", r.Stderr)
	}

	launchFromConfig := func(t *testing.T, cfg desktopConfig) {
		t.Helper()
		file := filepath.Join(t.TempDir(), "claude_desktop_config.json")
		b, _ := json.Marshal(cfg)
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out, stderr := tsClient(t, a.Env, []toolCall{{Name: "whoami", Arguments: map[string]any{}}}, "desktop", file)
		if len(out.Results) != 1 || out.Results[0].IsError || !strings.Contains(out.Results[0].Text, "alice") {
			t.Errorf("whoami through the host-launched bridge: %+v\n%s", out.Results, stderr)
		}
		if strings.Contains(stderr, "started one") {
			t.Errorf("the bridge started a second agent:\n%s", stderr)
		}
		if log := filepath.Join(envValue(a.Env, "HOME"), ".local", "state", "mcpkey", "agent.log"); fileExists(log) {
			b, _ := os.ReadFile(log)
			t.Errorf("an agent was autostarted (%s):\n%s", log, b)
		}
	}
	t.Run("snippet as printed", func(t *testing.T) { launchFromConfig(t, cfg) })
	// Without MCPKEY_SOCK (a snippet written before the agent moved, or by
	// hand) the bridge finds the agent through the per-user lock.
	t.Run("without MCPKEY_SOCK", func(t *testing.T) {
		for k, e := range cfg.MCPServers {
			e.Env = nil
			cfg.MCPServers[k] = e
		}
		launchFromConfig(t, cfg)
	})
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestAgentStartSymlinkSwap: another user (nobody, through setpriv) owns
// the fallback socket directory's name, <temp dir>/mcpkey-<uid>, in a
// shared sticky directory and keeps flipping it, as a symbolic link,
// between a directory of ours (0700, which passes an owner and mode check
// that follows links) and a directory of theirs, while `mcpkey agent`
// starts again and again. The agent's socket must never land in their
// directory.
func TestAgentStartSymlinkSwap(t *testing.T) {
	if os.Getuid() != 0 {
		skipOrFail(t, "needs root to run the attacker as nobody")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		skipOrFail(t, "setpriv not installed")
	}
	base, err := os.MkdirTemp("/tmp", "mkswap") // a /tmp of our own
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o1777)
	ours, theirs := filepath.Join(base, "ours"), filepath.Join(base, "theirs")
	os.Mkdir(ours, 0o700)
	os.Mkdir(theirs, 0o777)
	os.Chmod(theirs, 0o777)
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	attacker := filepath.Join(base, "swaplink")
	b, err := os.ReadFile(bin(t, "swaplink"))
	if err != nil || os.WriteFile(attacker, b, 0o755) != nil {
		t.Fatalf("copy swaplink: %v", err)
	}
	link := filepath.Join(base, "mcpkey-"+strconv.Itoa(os.Getuid()))
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", attacker, link, ours, theirs)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make([]byte, 9)
	if n, _ := out.Read(line); string(line[:n]) != "SWAPPING\n" {
		t.Fatalf("attacker did not start: %q", line[:n])
	}

	home := t.TempDir()
	sock := filepath.Join(link, "agent.sock")
	stolen := filepath.Join(theirs, "agent.sock")
	const starts = 40
	var landed, refused, listened int
	for i := range starts {
		c := exec.Command(bin(t, "mcpkey"), "agent", "--socket", sock, "--backend", "memory")
		c.Env = append(baseEnv(home), "MCPKEY_SOCK="+sock)
		p := start(t, "agent "+strconv.Itoa(i), c, nil)
		// Until it exits (refused) or says it listens.
		if err := poll(deadline(t, 20*time.Second), 5*time.Millisecond, func() bool {
			select {
			case <-p.done:
				return true
			default:
				return strings.Contains(p.stderr.String(), "msg=listening")
			}
		}); err != nil {
			t.Fatalf("start %d neither listened nor exited:\n%s", i, p.stderr.String())
		}
		if fileExists(stolen) {
			landed++
			os.Remove(stolen)
		}
		select {
		case <-p.done:
			refused++
			if !strings.Contains(p.stderr.String(), "symbolic link") {
				t.Errorf("start %d refused for another reason:\n%s", i, p.stderr.String())
			}
		default:
			listened++
		}
		p.stop()
	}
	t.Logf("%d starts refused, %d listened, %d sockets in the attacker's directory", refused, listened, landed)
	if landed > 0 {
		t.Fatalf("the agent's socket landed in the attacker's directory in %d of %d starts", landed, starts)
	}
	if refused == 0 {
		t.Fatal("no start was refused: the attack never ran")
	}
}

package e2e

// Issue 13 §9: after `mcpkey lock` (and after `mcpkey logout`) the agent's
// memory holds no copy of the tokens it dropped. Measured the way an
// attacker with the user's core dump would: gcore the running agent and count
// the access and refresh tokens in the dump, with the file and the keyctl
// backends. Before the agent wiped its copies, a lock left 17 copies of the
// access token and 21 of the one before it.

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent/store"
)

// startStoreAgent is startAgent with a real keyring backend, file or keyctl
// (the tokens live outside the agent, which holds them only while it needs
// them). It returns the store's configuration, for reading what the agent
// stored.
func startStoreAgent(t *testing.T, backend string) (*agentProc, store.KeyringConfig) {
	t.Helper()
	chromium(t)
	home := t.TempDir()
	sockDir, err := os.MkdirTemp("", "mk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "agent.sock")
	pass := filepath.Join(home, "passphrase")
	if err := os.WriteFile(pass, []byte(scrubPassphrase+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(baseEnv(home), "MCPKEY_SOCK="+sock, "MCPKEY_NO_AUTOSTART=1",
		"BROWSER="+bin(t, "chromebrowser"), "CHROMEBROWSER_CHROMIUM="+os.Getenv("CHROMEBROWSER_CHROMIUM"))
	os.MkdirAll(filepath.Join(home, "run"), 0o700)
	cmd := exec.Command(bin(t, "mcpkey"), "agent", "--socket", sock, "--backend", backend, "--passphrase-file", pass)
	cmd.Env = env
	a := &agentProc{Sock: sock, Env: env}
	a.p = start(t, "agent", cmd, nil)
	ctx := deadline(t, 20*time.Second)
	if err := poll(ctx, 20*time.Millisecond, func() bool {
		r := a.run(t, 10*time.Second, "status")
		return r.Code == 0
	}); err != nil {
		t.Fatalf("agent never answered: %v\n%s", err, a.p.stderr.String())
	}
	return a, store.KeyringConfig{Backend: backend, FileDir: filepath.Join(home, ".local", "share", "mcpkey", "keyring"),
		Passphrase: func(string) (string, error) { return scrubPassphrase, nil }}
}

// copiesInCore dumps pid's memory with gcore and counts each secret in it.
func copiesInCore(t *testing.T, pid int, secrets map[string]string) map[string]int {
	t.Helper()
	gcore, err := exec.LookPath("gcore")
	if err != nil {
		skipOrFail(t, "gcore missing; run: apt-get install gdb")
	}
	prefix := filepath.Join(t.TempDir(), "core")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, gcore, "-o", prefix, strconv.Itoa(pid)).CombinedOutput()
	if err != nil {
		t.Fatalf("gcore: %v\n%s", err, out)
	}
	core, err := os.Open(prefix + "." + strconv.Itoa(pid))
	if err != nil {
		t.Fatal(err)
	}
	defer core.Close()
	// The dump is large (Go and libc reserve address space): stream it,
	// keeping the tail of each chunk so no secret is split.
	longest := 0
	for _, s := range secrets {
		longest = max(longest, len(s))
	}
	counts := map[string]int{}
	buf := make([]byte, 0, 8<<20+longest)
	carried := 0 // bytes at the start of buf already counted
	for {
		n, err := io.ReadFull(core, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		for name, s := range secrets {
			// Count matches that end in the new bytes only.
			counts[name] += bytes.Count(buf, []byte(s)) - bytes.Count(buf[:carried], []byte(s))
		}
		if err != nil {
			break
		}
		carried = min(len(buf), longest-1)
		buf = append(buf[:0], buf[len(buf)-carried:]...)
	}
	return counts
}

// storedTokens reads the session's tokens from the agent's file keyring.
func storedTokens(t *testing.T, cfg store.KeyringConfig, server string) (access, refresh string) {
	t.Helper()
	ctx := deadline(t, 30*time.Second)
	st, err := store.OpenContext(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := store.LoadSessions(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Server == server {
			return r.AccessToken, r.RefreshToken
		}
	}
	t.Fatalf("no stored session for %s among %d", server, len(recs))
	return "", ""
}

const scrubPassphrase = "scrub-test-passphrase"

func TestLockScrubsMemory(t *testing.T) {
	if _, err := exec.LookPath("keyctl"); err != nil {
		skipOrFail(t, "keyctl missing; run: apt-get install keyutils")
	}
	for _, tc := range []struct {
		name, backend string
		drop          []string
	}{
		{"lock/file", "file", []string{"lock"}},
		{"logout/file", "file", []string{"logout", "--keep-remote"}},
		{"lock/keyctl", "keyctl", []string{"lock"}},
		{"logout/keyctl", "keyctl", []string{"logout", "--keep-remote"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.backend != "keyctl" {
				// keyctl is one keyring per uid: two agents on it would
				// both load (and refresh) each other's sessions, so those
				// runs take turns; the file backend's are per HOME.
				t.Parallel()
			}
			f := startFixture(t, "AS_ACCESS_TTL=4")
			a, cfg := startStoreAgent(t, tc.backend)
			a.mustRun(t, 90*time.Second, "login", f.MCP.URL)
			ctx := deadline(t, 60*time.Second)
			// Use the session the way hosts do, across a refresh (so a
			// rotated refresh token has passed through the agent too).
			first, err := a.token(ctx, f.MCP.URL)
			if err != nil {
				t.Fatal(err)
			}
			var last token
			if err := poll(ctx, 100*time.Millisecond, func() bool {
				last, err = a.token(ctx, f.MCP.URL)
				return err == nil && last.AccessToken != first.AccessToken
			}); err != nil {
				t.Fatalf("the token was never refreshed: %v", err)
			}
			for range 5 {
				a.mustRun(t, 20*time.Second, "token", f.MCP.URL)
			}
			at, rt := storedTokens(t, cfg, f.MCP.Resource)
			secrets := map[string]string{"first access token": first.AccessToken, "access token": at, "refresh token": rt}
			// 99designs/keyring's file backend encodes an item as JSON (the
			// token in base64) before encrypting it, in buffers of its own:
			// those copies are counted and reported, not failed on.
			for name, s := range maps.Clone(secrets) {
				secrets[name+" (base64)"] = base64.StdEncoding.EncodeToString([]byte(s))
			}
			if at != last.AccessToken {
				t.Fatalf("stored access token is not the one served last")
			}
			before := copiesInCore(t, a.p.cmd.Process.Pid, secrets)
			t.Logf("copies in the agent's memory while serving: %v", before)
			if before["access token"] == 0 {
				t.Fatal("the dump holds no copy of the live access token: the measurement is broken")
			}

			args := tc.drop
			if tc.drop[0] == "logout" {
				args = append(args, f.MCP.URL)
			} else {
				// Leave the keyring as found.
				t.Cleanup(func() {
					a.run(t, 30*time.Second, "unlock")
					a.run(t, 30*time.Second, "logout", "--keep-remote", f.MCP.URL)
				})
			}
			a.mustRun(t, 30*time.Second, args...)
			after := copiesInCore(t, a.p.cmd.Process.Pid, secrets)
			t.Logf("copies in the agent's memory after %s: %v", strings.Join(tc.drop, " "), after)
			for name, n := range after {
				// Most runs leave none. A copy or two can stay in freed
				// memory the runtime has not returned to the OS: buffers
				// inside encoding/json's encoder pool and net/http's
				// connections, not ours to clear (the README says so).
				// Before the agent wiped its own, a lock left 17.
				const allowed = 2
				if strings.HasSuffix(name, "(base64)") {
					continue
				}
				if n > allowed {
					t.Errorf("after %s the agent's memory still holds %d copies of the %s (at most %d)", tc.drop[0], n, name, allowed)
				}
			}
		})
	}
}

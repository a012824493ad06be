package e2e

// Cold-start benchmark (issue 12 §9): how long after `mcpkey agent` starts
// its socket answers status, and how long until a first token.get (for the
// session the agent would read last) is answered, with 10, 100 and 1,000
// sessions in the file backend. The sessions are created once per run (a
// file-backend item costs a key derivation, so 1,000 take a while). Run:
//
//	go test ./e2e -run '^$' -bench BenchmarkColdStart -benchtime 5x
//
// It reports ms-to-status and ms-to-token (from the exec of the agent).

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/ipc"
)

const coldStartPassphrase = "cold start benchmark"

// coldStartHomes caches, per session count, a HOME whose file keyring
// holds that many sessions, for the whole benchmark run.
var coldStartHomes = map[int]string{}

func coldStartHome(b *testing.B, n int) (home, last string) {
	b.Helper()
	last = fmt.Sprintf("https://s%04d.example.com/mcp", n-1)
	if h, ok := coldStartHomes[n]; ok {
		return h, last
	}
	home, err := os.MkdirTemp("", "mkcold")
	if err != nil {
		b.Fatal(err)
	}
	servers := make([]string, n)
	for i := range servers {
		servers[i] = fmt.Sprintf("https://s%04d.example.com/mcp", i)
	}
	putFileSessions(b, home, coldStartPassphrase, servers...)
	coldStartHomes[n] = home
	return home, last
}

// putFileSessions stores a session for each server (access token
// "at-"+server, valid for ten days) in the file keyring under home, as
// `mcpkey agent --backend file` with that HOME and passphrase reads it.
func putFileSessions(tb testing.TB, home, passphrase string, servers ...string) {
	tb.Helper()
	dir := filepath.Join(home, ".local", "share", "mcpkey", "keyring")
	st, err := store.Open(store.KeyringConfig{Backend: store.BackendFile, FileDir: dir,
		Passphrase: func(string) (string, error) { return passphrase, nil }})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if err := store.EnsureSchema(ctx, st); err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	for _, s := range servers {
		if err := store.PutSession(ctx, st, store.SessionRecord{Server: s, Issuer: "https://as.example.com",
			ClientID: "c", TokenType: "Bearer", AccessToken: "at-" + s, RefreshToken: "rt-" + s,
			ExpiresAt: now.Add(240 * time.Hour), ObtainedAt: now, Resource: s,
			TokenEndpoint: "https://as.example.com/token"}); err != nil {
			tb.Fatal(err)
		}
	}
}

func BenchmarkColdStart(b *testing.B) {
	b.Cleanup(func() {
		for _, h := range coldStartHomes {
			os.RemoveAll(h)
		}
	})
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			home, last := coldStartHome(b, n)
			var toStatus, toToken time.Duration
			for range b.N {
				s, tk := coldStartOnce(b, home, last)
				toStatus += s
				toToken += tk
			}
			b.ReportMetric(float64(toStatus.Microseconds())/1000/float64(b.N), "ms-to-status")
			b.ReportMetric(float64(toToken.Microseconds())/1000/float64(b.N), "ms-to-token")
		})
	}
}

// coldStartOnce starts an agent over home's file keyring and measures, from
// its exec, the first status answer and then the first token.get for last.
func coldStartOnce(b *testing.B, home, last string) (toStatus, toToken time.Duration) {
	b.Helper()
	sockDir, err := os.MkdirTemp("", "mk")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	os.Chmod(sockDir, 0o700)
	sock := filepath.Join(sockDir, "agent.sock")
	cmd := exec.Command(bin(b, "mcpkey"), "agent", "--socket", sock, "--backend", "file")
	cmd.Env = append(baseEnv(home), "MCPKEY_FILE_PASSPHRASE="+coldStartPassphrase, "MCPKEY_SOCK="+sock)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	c := &ipc.Client{Path: sock}
	defer c.Close()
	for {
		if conn, err := net.Dial("unix", sock); err == nil {
			conn.Close()
			if _, err := c.Status(ctx); err == nil {
				break
			}
		}
		if ctx.Err() != nil {
			b.Fatal("the agent never answered status")
		}
		time.Sleep(time.Millisecond) // polling for the socket, bounded by ctx
	}
	toStatus = time.Since(start)
	tok, err := c.Token(ctx, agent.TokenRequest{Server: last})
	if err != nil || tok.AccessToken != "at-"+last {
		b.Fatalf("token.get: %v", err)
	}
	return toStatus, time.Since(start)
}

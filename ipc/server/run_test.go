package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/api"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/cli"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// runEnv gives the test its own HOME (so its own per-user agent lock) and a
// short directory for the socket.
func runEnv(t *testing.T) (dir string) {
	dir, err := os.MkdirTemp("", "mkr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	t.Setenv("HOME", filepath.Join(dir, "home"))
	t.Setenv("MCPKEY_BACKEND", "")
	return dir
}

// startRun runs server.Run with o until the test ends; it returns Run's
// result channel and a stop function.
func startRun(t *testing.T, o server.Options) (done <-chan error, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- server.Run(ctx, o) }()
	t.Cleanup(cancel)
	return errc, cancel
}

// status polls the agent on socket until it answers.
func status(t *testing.T, socket string) api.Status {
	t.Helper()
	c := &ipc.Client{Path: socket}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		st, err := c.Status(ctx)
		cancel()
		if err == nil {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent never answered on %s: %v", socket, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunServesUntilCancelled: Run takes the socket and the per-user lock,
// publishes the WebSocket, serves, refuses a second agent of the same user,
// and cleans up when its context ends.
func TestRunServesUntilCancelled(t *testing.T) {
	dir := runEnv(t)
	sock := filepath.Join(dir, "agent.sock")
	logs := io.Discard
	lv := slog.LevelDebug
	done, stop := startRun(t, server.Options{Socket: sock, ConfigPath: filepath.Join(dir, "config.toml"), Backend: "memory",
		AuditLog: "off", WebSocket: true, Version: "run-test", LogLevel: &lv, Stderr: logs})
	st := status(t, sock)
	if st.Version != "run-test" || st.Socket != sock || st.StoreBackend != "memory" || st.WebSocketURL == "" {
		t.Errorf("status: %+v", st)
	}
	if _, err := os.Stat(ipc.WebSocketInfoPath(sock)); err != nil {
		t.Errorf("WebSocket info: %v", err)
	}

	// A second agent of the same user is refused, naming the first.
	err := server.Run(t.Context(), server.Options{Socket: filepath.Join(dir, "second.sock"), ConfigPath: filepath.Join(dir, "config.toml"), Backend: "memory", AuditLog: "off", Stderr: logs})
	var running *ipc.AlreadyRunningError
	if !errors.As(err, &running) || running.Path != sock {
		t.Errorf("second Run: %v, want AlreadyRunningError for %s", err, sock)
	}
	// With a tray, the second one starts only the tray, for the first.
	var traySocket string
	err = server.Run(t.Context(), server.Options{Socket: filepath.Join(dir, "third.sock"), ConfigPath: filepath.Join(dir, "config.toml"), Backend: "memory", AuditLog: "off", Stderr: logs,
		Tray: func(ctx context.Context, socket string, log *slog.Logger, configPath string) error {
			traySocket = socket
			return nil
		}})
	if err != nil || traySocket != sock {
		t.Errorf("Run with a tray beside a running agent: %v; tray for %q, want %q", err, traySocket, sock)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, err := os.Stat(ipc.WebSocketInfoPath(sock)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("WebSocket info left behind: %v", err)
	}
}

// TestRunWithTray: the tray runs on Run's goroutine as a client of the
// agent, which serves meanwhile; Quit (the tray returning nil) stops it.
func TestRunWithTray(t *testing.T) {
	dir := runEnv(t)
	sock := filepath.Join(dir, "agent.sock")
	quit := make(chan error)
	seen := make(chan api.Status, 1)
	done, stop := startRun(t, server.Options{Socket: sock, ConfigPath: filepath.Join(dir, "config.toml"), Backend: "memory", AuditLog: "off", Stderr: io.Discard,
		Tray: func(ctx context.Context, socket string, log *slog.Logger, configPath string) error {
			seen <- status(t, socket) // the agent serves while the tray runs
			return <-quit
		}})
	defer stop()
	if st := <-seen; st.Socket != sock {
		t.Errorf("the tray's agent reports socket %q, want %q", st.Socket, sock)
	}
	quit <- nil // Quit
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after Quit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Quit in the tray did not stop the agent")
	}
}

// TestAgentCommandLine: `mcpkey agent`'s flags make Run's Options; bad
// ones are usage errors and nothing runs.
func TestAgentCommandLine(t *testing.T) {
	dir := runEnv(t)
	agentCmd := func(errOut *bytes.Buffer, runF func(context.Context, server.Options) error) (*cli.Factory, []cli.Group) {
		f := &cli.Factory{IO: &cli.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: errOut}, NoAutostart: true}
		hook := func(context.Context, string, *slog.Logger, string) error { return nil }
		return f, []cli.Group{{Title: "t", Commands: []*cli.Command{server.NewCmdAgent(f, hook, runF)}}}
	}
	mustNotRun := func(context.Context, server.Options) error { t.Error("the agent ran"); return nil }

	t.Setenv("MCPKEY_SOCK", "ws://127.0.0.1:1/v1/ws#/x.ws.json")
	var errOut bytes.Buffer
	f, table := agentCmd(&errOut, mustNotRun)
	if code := cli.Run(t.Context(), f, table, []string{"agent"}); code != cli.ExitUsage || !strings.Contains(errOut.String(), "MCPKEY_SOCK holds a WebSocket URL") {
		t.Errorf("a WebSocket URL for a socket: exit %d, %q", code, errOut.String())
	}
	t.Setenv("MCPKEY_SOCK", filepath.Join(dir, "env.sock"))
	errOut.Reset()
	f, table = agentCmd(&errOut, mustNotRun)
	if code := cli.Run(t.Context(), f, table, []string{"agent", "--log-level", "loud"}); code != cli.ExitUsage ||
		errOut.String() != "mcpkey agent: --log-level: \"loud\" is not one of debug, info, warn, error\nhint: run mcpkey help agent\n" {
		t.Errorf("--log-level loud: exit %d, %q", code, errOut.String())
	}

	var got server.Options
	f, table = agentCmd(&errOut, func(_ context.Context, o server.Options) error { got = o; return nil })
	cli.Run(t.Context(), f, table, []string{"agent", "--backend", "file", "--ws-listen", "127.0.0.1:0", "--log-level", "debug", "--tray", "--audit-log", "off"})
	if got.Socket != filepath.Join(dir, "env.sock") || got.Backend != "file" || got.WSListen != "127.0.0.1:0" ||
		got.LogLevel == nil || *got.LogLevel != slog.LevelDebug || got.Tray == nil || got.AuditLog != "off" || got.ConfigPath == "" {
		t.Errorf("options: %+v", got)
	}
	cli.Run(t.Context(), f, table, []string{"agent", "--socket", filepath.Join(dir, "flag.sock")})
	if got.Socket != filepath.Join(dir, "flag.sock") || got.Tray != nil || got.LogLevel != nil {
		t.Errorf("options without --tray or --log-level: %+v", got)
	}
}

package ipc

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpkey/mcpkey/internal/userdirs"

	"github.com/mcpkey/mcpkey/internal/safefile"
)

// StartOptions configures StartAgent. The zero value starts this executable's
// `agent` command on the default socket.
type StartOptions struct {
	// Exe is the mcpkey binary; "" means os.Executable().
	Exe string
	// Path is the socket the new agent must answer on; "" means
	// DefaultSocketPath().
	Path string
	// LogPath receives the agent's stderr; "" means agent.log in
	// userdirs.StateDir().
	LogPath string
	// Timeout bounds the wait for the agent to answer; 0 means 10 s.
	Timeout time.Duration
}

// StartAgent starts `mcpkey agent` in the background, detached from the
// caller's session and terminal (as gpg-agent is started on demand), and
// waits until it answers on the socket. It returns the new agent's pid and
// the log file it writes to.
func StartAgent(ctx context.Context, opts StartOptions) (pid int, logPath string, err error) {
	exe := opts.Exe
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return 0, "", fmt.Errorf("start agent: %w", err)
		}
	}
	path := opts.Path
	if path == "" {
		if path, err = DefaultSocketPath(); err != nil {
			return 0, "", err
		}
	}
	logPath = opts.LogPath
	if logPath == "" {
		dir, err := userdirs.StateDir()
		if err != nil {
			return 0, "", fmt.Errorf("start agent: %w", err)
		}
		logPath = filepath.Join(dir, "agent.log")
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return 0, "", fmt.Errorf("start agent: %w", err)
	}
	logf, err := safefile.OpenAppend(logPath)
	if err != nil {
		return 0, "", fmt.Errorf("start agent: %w", err)
	}
	defer logf.Close()
	start, _ := logf.Seek(0, 2)

	cmd := exec.Command(exe, "agent", "--socket", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = detached()
	if err := cmd.Start(); err != nil {
		return 0, logPath, fmt.Errorf("start agent: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	timeout := cmp.Or(opts.Timeout, 10*time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &Client{Path: path}
	defer c.Close()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		hctx, hcancel := context.WithTimeout(ctx, time.Second)
		_, err := c.Hello(hctx)
		hcancel()
		if err == nil {
			return cmd.Process.Pid, logPath, nil
		}
		select {
		case werr := <-exited:
			return 0, logPath, fmt.Errorf("the agent exited at start (%v): %s", werr, lastLine(logPath, start))
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return 0, logPath, fmt.Errorf("%w: started an agent (pid %d) but it did not answer on %s within %s; see %s", ErrNoAgent, cmd.Process.Pid, path, timeout, logPath)
			}
			return 0, logPath, ctx.Err()
		case <-tick.C:
		}
	}
}

// lastLine returns the last non-empty line the agent logged after offset.
func lastLine(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return "see " + path
	}
	lines := bytes.Split(bytes.TrimSpace(b[offset:]), []byte("\n"))
	if l := strings.TrimSpace(string(lines[len(lines)-1])); l != "" {
		return l
	}
	return "see " + path
}

package ipc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// AgentLock is the per-user agent lock: one agent per user (and HOME),
// whatever socket it listens on, so two agents never share a keyring. An
// agent takes it before it listens (LockAgent), records its pid and socket
// in it (Publish) and holds it until it exits; the operating system drops
// it with the process. Clients read the record to find the agent when their
// own default socket has none (RunningAgent).
//
// It lives where every process of the user finds it whatever its
// environment: on Linux /run/user/<uid>/mcpkey/ when that directory is
// ours, else /tmp/mcpkey-<uid>/ (checked as the socket directory is); on
// macOS next to the default socket; on Windows in %LOCALAPPDATA%\mcpkey\.
type AgentLock struct {
	f    *os.File
	path string
}

// agentRecord is the lock file's content.
type agentRecord struct {
	PID    int    `json:"pid"`
	Socket string `json:"socket"`
}

// LockAgent takes the per-user agent lock. When another agent holds it, it
// returns an *AlreadyRunningError naming that agent's socket and pid.
func LockAgent() (*AgentLock, error) {
	dir, err := agentLockDir()
	if err != nil {
		return nil, fmt.Errorf("agent lock: %w", err)
	}
	path := filepath.Join(dir, agentLockName())
	for range 10 {
		f, err := openAgentLock(dir, filepath.Base(path))
		if err != nil {
			return nil, fmt.Errorf("agent lock %s: %w", path, err)
		}
		if err := lockExclusive(f); err != nil {
			f.Close()
			if !errors.Is(err, errLockHeld) {
				return nil, fmt.Errorf("agent lock %s: %w", path, err)
			}
			rec := waitForRecord(path)
			return nil, &AlreadyRunningError{Path: rec.Socket, PID: rec.PID, Lock: path}
		}
		// An agent that was exiting may have removed the file between our
		// open and our lock: then the lock is on a file nobody else finds.
		fi, ferr := f.Stat()
		pi, perr := os.Lstat(path)
		if ferr == nil && perr == nil && os.SameFile(fi, pi) {
			return &AgentLock{f: f, path: path}, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("agent lock %s: the file keeps being replaced", path)
}

// Path is the lock file's path.
func (l *AgentLock) Path() string { return l.path }

// Publish records this process's pid and its socket in the lock.
func (l *AgentLock) Publish(socket string) error {
	b, err := json.Marshal(agentRecord{PID: os.Getpid(), Socket: socket})
	if err != nil {
		return err
	}
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("agent lock %s: %w", l.path, err)
	}
	if _, err := l.f.WriteAt(append(b, '\n'), 0); err != nil {
		return fmt.Errorf("agent lock %s: %w", l.path, err)
	}
	return nil
}

// Close removes the lock file and releases the lock (in that order, so an
// agent starting meanwhile either finds the lock held or locks a new file:
// LockAgent checks that the file it locked is still the one at the path).
func (l *AgentLock) Close() error {
	l.f.Truncate(0)
	os.Remove(l.path)
	return l.f.Close()
}

// RunningAgent returns the socket and pid recorded by the agent holding
// the per-user lock; ok is false when no agent holds it or it has not
// recorded its socket yet.
func RunningAgent() (socket string, pid int, ok bool) {
	dir, err := agentLockDir()
	if err != nil {
		return "", 0, false
	}
	rec, held := readRecord(filepath.Join(dir, agentLockName()))
	return rec.Socket, rec.PID, held && rec.Socket != ""
}

// readRecord reads the lock file at path; held reports whether a process
// holds the lock.
func readRecord(path string) (rec agentRecord, held bool) {
	f, err := openPrivateFileNoFollow(path)
	if err != nil {
		return rec, false
	}
	defer f.Close()
	if !isLocked(f) {
		return rec, false
	}
	b, _ := io.ReadAll(io.LimitReader(f, 4096))
	if json.Unmarshal(b, &rec) != nil {
		return agentRecord{}, true
	}
	return rec, true
}

// waitForRecord gives an agent that holds the lock but is still starting up
// to two seconds to record its socket.
func waitForRecord(path string) agentRecord {
	deadline := time.Now().Add(2 * time.Second)
	for {
		rec, held := readRecord(path)
		if rec.Socket != "" || !held || time.Now().After(deadline) {
			return rec
		}
		time.Sleep(20 * time.Millisecond)
	}
}

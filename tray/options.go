// Package tray is mcpkey's status icon: every session at a glance, log in
// and out, lock, answer approvals, and desktop notifications when a login
// is needed. It is an ordinary client of the agent through ipc.Client and
// never holds a token.
//
// The menu is a pure function of what the agent reports (menuFor); Run
// renders it with fyne.io/systray (StatusNotifierItem and dbusmenu on Linux)
// and keeps it current from the agent's events, without polling.
package tray

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"
)

// Options configures Run. The zero value is usable.
type Options struct {
	// Logger receives the tray's diagnostics; nil discards them.
	Logger *slog.Logger
	// Stderr receives the one line saying there is no tray host; nil
	// means os.Stderr.
	Stderr io.Writer
	// ConfigPath is what "Open config" opens; "" means the path the agent
	// reports, else userdirs.ConfigPath().
	ConfigPath string
	// LogPath is what "Open log" opens; "" means agent.log in
	// userdirs.StateDir(), where an agent started on demand logs.
	LogPath string
	// StartAgent runs for "Start agent"; nil means ipc.StartAgent on the
	// client's socket.
	StartAgent func(ctx context.Context) error
	// OpenFile opens a file or directory with the desktop's handler; nil
	// means xdg-open (open on macOS, explorer on Windows).
	OpenFile func(ctx context.Context, path string) error
	// Now is the clock for "valid 42 min" and the notification limit; nil
	// means time.Now.
	Now func() time.Time
	// NoNotifications turns desktop notifications off.
	NoNotifications bool
}

// ErrNoHost is returned by Run when there is no desktop session to show an
// icon in (no D-Bus session bus on Linux). The agent does not need one:
// every feature works from the CLI.
var ErrNoHost = errors.New("no D-Bus session bus, so no tray icon (every feature works from the command line)")

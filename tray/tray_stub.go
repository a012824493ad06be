//go:build darwin && !cgo

package tray

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/mcpkey/mcpkey/ipc"
)

// Options configures Run; see the cgo build for the fields' meaning.
type Options struct {
	Logger          *slog.Logger
	Stderr          io.Writer
	ConfigPath      string
	LogPath         string
	StartAgent      func(ctx context.Context) error
	OpenFile        func(ctx context.Context, path string) error
	Now             func() time.Time
	NoNotifications bool
}

// ErrNoHost is returned by Run when there is no desktop session to show an
// icon in.
var ErrNoHost = errors.New("no tray host")

// Run reports that this build has no tray: on macOS fyne.io/systray needs
// cgo (AppKit).
func Run(ctx context.Context, c *ipc.Client, opts Options) error {
	return fmt.Errorf("the tray needs a build with cgo on macOS (CGO_ENABLED=1): %w", errors.ErrUnsupported)
}

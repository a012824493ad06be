//go:build darwin && !cgo

package tray

import (
	"context"
	"errors"
	"fmt"

	"github.com/mcpkey/mcpkey/ipc"
)

// Run reports that this build has no tray: on macOS fyne.io/systray needs
// cgo (AppKit).
func Run(ctx context.Context, c *ipc.Client, opts Options) error {
	return fmt.Errorf("the tray needs a build with cgo on macOS (CGO_ENABLED=1): %w", errors.ErrUnsupported)
}

//go:build !linux

package policy

import (
	"context"
	"errors"
)

// watchScreenLock is only implemented on Linux (logind and screensaver
// D-Bus signals); macOS and Windows would need their session notifications.
func (po *Policy) watchScreenLock(ctx context.Context) (func(), error) {
	return nil, errors.ErrUnsupported
}

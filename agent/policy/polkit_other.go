//go:build !linux

package policy

import (
	"context"
	"errors"
	"fmt"
)

// polkitAuthorize: polkit approvals are built for Linux only.
func (po *Policy) polkitAuthorize(ctx context.Context, cancelID string) (bool, error) {
	return false, fmt.Errorf("polkit approvals need Linux: %w", errors.ErrUnsupported)
}

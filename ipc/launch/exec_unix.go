//go:build unix

package launch

import (
	"context"
	"fmt"
	"syscall"
)

const (
	pathListSep = ":"
	pathSep     = '/'
)

func execve(ctx context.Context, path string, argv, env []string) (int, error) {
	err := syscall.Exec(path, argv, env)
	return 126, fmt.Errorf("exec %s: %w", path, err)
}

//go:build windows

package launch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
)

const (
	pathListSep = ";"
	pathSep     = '\\'
)

// execve starts the child (Windows has no exec), forwards Ctrl-C to it and
// returns its exit code.
func execve(_ context.Context, path string, argv, env []string) (int, error) {
	cmd := exec.Command(path, argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 126, fmt.Errorf("start %s: %w", path, err)
	}
	go func() {
		// The console delivers Ctrl-C to the child as well: mcpkey stays
		// alive and waits for it to exit, then forwards its exit code.
		for range sigs {
		}
	}()
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}

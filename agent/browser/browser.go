// Package browser opens URLs in the user's web browser for OAuth logins.
//
// Only http and https URLs are opened, always by exec with an argument
// vector, never through a shell (spec-checklist.md §N.5). The browser is
// started and not waited for; a goroutine reaps it when it exits.
//
// # Which program
//
//   - $BROWSER, when set: a list of programs separated by the OS path-list
//     separator (':' on Unix, ';' on Windows), as xdg-utils reads it. The
//     first entry found on $PATH (or as an absolute path) is run with the URL
//     as its one and only argument. Each entry is a program path, never a
//     command line: "/opt/My Browser/run" is one program whose path contains
//     spaces, not a program and an argument. The "%s" placeholder some tools
//     accept is not supported.
//   - Otherwise the desktop's default handler: xdg-open (Linux, BSD), open
//     (macOS), rundll32 url.dll,FileProtocolHandler (Windows).
//
// As root (effective uid 0) on Unix the desktop default is never launched,
// since that would run a browser as root; an explicit $BROWSER is still
// honoured.
package browser

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Opener opens url in a browser. Open is the real one; Stub records calls for
// tests.
type Opener func(ctx context.Context, url string) error

// ErrRoot is returned when the desktop default browser would be launched as
// root. Set $BROWSER to choose a program explicitly, or open the URL by hand.
var ErrRoot = errors.New("refusing to launch the desktop browser as root (set $BROWSER or open the URL yourself)")

// Open opens rawURL in the user's browser. See the package documentation for
// how the program is chosen. It returns once the browser process has started.
func Open(ctx context.Context, rawURL string) error {
	return launcher{getenv: os.Getenv, euid: os.Geteuid(), defaultCmd: defaultCommand}.open(ctx, rawURL)
}

// CheckURL reports whether rawURL may be handed to a browser: an absolute
// http or https URL with a host and no control characters or spaces.
func CheckURL(rawURL string) error {
	for _, r := range rawURL {
		if r <= ' ' || r == 0x7f {
			return errors.New("browser: url contains spaces or control characters")
		}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("browser: invalid url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("browser: refusing to open a %q url: only http and https are allowed", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("browser: url has no host")
	}
	return nil
}

// launcher holds what Open reads from the process, so tests can set it.
type launcher struct {
	getenv func(string) string
	euid   int
	// defaultCmd returns the argv of the desktop default handler for url.
	defaultCmd func(url string) []string
}

func (l launcher) open(ctx context.Context, rawURL string) error {
	if err := CheckURL(rawURL); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if env := l.getenv("BROWSER"); env != "" {
		var tried []string
		for _, prog := range filepath.SplitList(env) {
			prog = strings.TrimSpace(prog)
			if prog == "" {
				continue
			}
			tried = append(tried, prog)
			path, err := exec.LookPath(prog)
			if err != nil {
				continue
			}
			return start(path, rawURL)
		}
		return fmt.Errorf("browser: no program from $BROWSER found (tried %q)", tried)
	}
	if l.euid == 0 {
		return ErrRoot
	}
	argv := l.defaultCmd(rawURL)
	if argv == nil {
		return fmt.Errorf("browser: no default browser on this system: %w", errors.ErrUnsupported)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("browser: %w", err)
	}
	return start(path, argv[1:]...)
}

// start runs path with args and reaps it in the background. It does not tie
// the process to a context: the browser outlives the call.
func start(path string, args ...string) error {
	cmd := exec.Command(path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("browser: start %s: %w", filepath.Base(path), err)
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

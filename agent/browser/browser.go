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
//
// # The caller's environment
//
// A login is usually asked for from a terminal whose $BROWSER, $DISPLAY
// and $WAYLAND_DISPLAY the agent, started elsewhere, does not have. As
// gpg-agent's updatestartuptty does for pinentry, a ctx made by WithEnv
// carries the caller's values: its $BROWSER replaces the agent's, and its
// displays are set in the browser's environment. Only the agent's trusted
// transport (the main socket, a peer of the same uid) may attach them, and
// a caller's $BROWSER is never run as root (ErrCallerBrowserRoot).
//
// # The browser's environment
//
// The browser gets the agent's environment without the variables that
// carry or locate secrets (the file backend's passphrase and its
// descriptor, the D-Bus re-exec marker): see ChildEnv.
package browser

import (
	"context"
	"errors"
	"fmt"
	"github.com/mcpkey/mcpkey/api"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Opener opens url in a browser. Open is the real one; Stub records calls for
// tests.
type Opener func(ctx context.Context, url string) error

// ErrRoot is returned when the desktop default browser would be launched as
// root. Set $BROWSER to choose a program explicitly, or open the URL by hand.
var ErrRoot = errors.New("refusing to launch the desktop browser as root (set $BROWSER or open the URL yourself)")

// ErrCallerBrowserRoot is returned when the $BROWSER sent by a login's
// caller would run as root.
var ErrCallerBrowserRoot = errors.New("refusing to run a $BROWSER sent by a client as root (set $BROWSER for the agent itself, or open the URL yourself)")

// Env is what a login's caller passes for its browser (api.BrowserEnv).
type Env = api.BrowserEnv

type envKey struct{}

// WithEnv returns ctx carrying a login caller's environment for Open. Only
// a trusted transport may call it: the $BROWSER in e is a program the agent
// will run.
func WithEnv(ctx context.Context, e Env) context.Context {
	if e.IsZero() {
		return ctx
	}
	return context.WithValue(ctx, envKey{}, e)
}

// EnvFrom returns the environment WithEnv attached to ctx.
func EnvFrom(ctx context.Context) (Env, bool) {
	e, ok := ctx.Value(envKey{}).(Env)
	return e, ok
}

// scrubbed are the variables no browser inherits: the file backend's
// passphrase and its descriptor (store.PassphraseEnv, PassphraseFDEnv; the
// agent has already taken them out, this is the second lock) and the D-Bus
// re-exec marker (store.ReexecMarker).
var scrubbed = []string{"MCPKEY_FILE_PASSPHRASE", "MCPKEY_FILE_PASSPHRASE_FD", "MCPKEY_KEYRING_DBUS"}

// ChildEnv returns environ (os.Environ() form) without the scrubbed
// variables, and with $DISPLAY and $WAYLAND_DISPLAY replaced by e's when
// set.
func ChildEnv(environ []string, e Env) []string {
	set := map[string]string{}
	if e.Display != "" {
		set["DISPLAY"] = e.Display
	}
	if e.WaylandDisplay != "" {
		set["WAYLAND_DISPLAY"] = e.WaylandDisplay
	}
	out := make([]string, 0, len(environ)+len(set))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains(scrubbed, name) {
			continue
		}
		if _, ok := set[name]; ok {
			continue
		}
		out = append(out, kv)
	}
	for _, name := range []string{"DISPLAY", "WAYLAND_DISPLAY"} {
		if v, ok := set[name]; ok {
			out = append(out, name+"="+v)
		}
	}
	return out
}

// Open opens rawURL in the user's browser. See the package documentation for
// how the program is chosen. It returns once the browser process has started.
func Open(ctx context.Context, rawURL string) error {
	return launcher{getenv: os.Getenv, environ: os.Environ, euid: os.Geteuid(), defaultCmd: defaultCommand}.open(ctx, rawURL)
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
	getenv  func(string) string
	environ func() []string // nil: os.Environ
	euid    int
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
	caller, _ := EnvFrom(ctx)
	environ := l.environ
	if environ == nil {
		environ = os.Environ
	}
	childEnv := ChildEnv(environ(), caller)
	env := l.getenv("BROWSER")
	if caller.Browser != "" {
		if l.euid == 0 {
			if env == "" {
				return ErrCallerBrowserRoot
			}
		} else {
			env = caller.Browser
		}
	}
	if env != "" {
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
			return start(childEnv, path, rawURL)
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
	return start(childEnv, path, argv[1:]...)
}

// start runs path with args in env and reaps it in the background. It does
// not tie the process to a context: the browser outlives the call.
func start(env []string, path string, args ...string) error {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("browser: start %s: %w", filepath.Base(path), err)
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

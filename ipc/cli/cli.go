package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/mcpkey/mcpkey/api"
	"github.com/mcpkey/mcpkey/internal/userdirs"
	"github.com/mcpkey/mcpkey/ipc"
)

// Exit codes, documented in `mcpkey help` and the README.
const (
	ExitOK          = 0
	ExitError       = 1   // any other failure
	ExitUsage       = 2   // bad command line
	ExitNeedsLogin  = 3   // no usable session: run mcpkey login
	ExitNoAgent     = 4   // no agent answers (MCPKEY_NO_AUTOSTART=1) or it could not start
	ExitLocked      = 5   // the agent is locked
	ExitDenied      = 6   // the agent refused the request
	ExitInterrupted = 130 // Ctrl-C
)

// IOStreams are a command's standard streams.
type IOStreams struct {
	In          io.Reader
	Out, ErrOut io.Writer
}

// System is the process's own streams.
func System() *IOStreams { return &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr} }

// InTerminal reports whether In is a terminal.
func (s *IOStreams) InTerminal() bool {
	f, ok := s.In.(*os.File)
	return ok && IsTerminal(f)
}

// Factory is what every command is built with: its streams, how to reach
// the agent, and the version. Tests build one around buffers and a private
// agent's socket.
type Factory struct {
	IO *IOStreams
	// Client returns a new client of the agent; nil means one for
	// $MCPKEY_SOCK, else the per-user default socket.
	Client func() *ipc.Client
	// NoAutostart keeps client commands from starting an agent when none
	// answers (MCPKEY_NO_AUTOSTART=1).
	NoAutostart bool
	// StartAgent starts an agent in the background; nil means
	// ipc.StartAgent.
	StartAgent func(ctx context.Context) (pid int, logPath string, err error)
	// Version is mcpkey's version.
	Version string
}

// NewFactory is the Factory of the mcpkey process: the system streams and
// the environment's agent.
func NewFactory(version string) *Factory {
	return &Factory{IO: System(), Version: version, NoAutostart: os.Getenv("MCPKEY_NO_AUTOSTART") == "1"}
}

// NewClient returns a new client of the agent (see Factory.Client).
func (f *Factory) NewClient() *ipc.Client {
	if f.Client != nil {
		return f.Client()
	}
	return &ipc.Client{}
}

// WithAgent runs call against the agent; when no agent answers it starts
// one in the background (as gpg-agent does) and calls again, unless
// f.NoAutostart.
func (f *Factory) WithAgent(ctx context.Context, call func() error) error {
	err := call()
	if !errors.Is(err, ipc.ErrNoAgent) || f.NoAutostart {
		return err
	}
	start := f.StartAgent
	if start == nil {
		start = func(ctx context.Context) (int, string, error) { return ipc.StartAgent(ctx, ipc.StartOptions{}) }
	}
	pid, logPath, serr := start(ctx)
	if serr != nil {
		return serr
	}
	fmt.Fprintf(f.IO.ErrOut, "mcpkey: no agent was running; started one (pid %d, log %s)\n", pid, logPath)
	return call()
}

// ask runs call with a new client of the agent; see Factory.WithAgent.
func ask[T any](ctx context.Context, f *Factory, call func(*ipc.Client) (T, error)) (T, error) {
	c := f.NewClient()
	defer c.Close()
	var v T
	err := f.WithAgent(ctx, func() (err error) { v, err = call(c); return err })
	return v, err
}

// UsageError marks a bad command line: exit code 2 and a hint to the
// command's help.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// Usagef returns a UsageError.
func Usagef(format string, a ...any) error { return UsageError{fmt.Sprintf(format, a...)} }

// ErrMissingServer is Parse's answer when a required <server> is absent.
var ErrMissingServer error = UsageError{"missing <server>"}

// Report prints err the mcpkey way (lowercase, a hint where the fix is
// known) on w and maps it to an exit code.
func Report(w io.Writer, c *Command, err error) int {
	if err == nil {
		return ExitOK
	}
	var ue UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(w, "mcpkey %s: %s\nhint: run mcpkey help %s\n", c.Name, ue.Msg, c.Name)
		return ExitUsage
	}
	fmt.Fprintf(w, "mcpkey: %s\n", err)
	var nl *api.NeedsLoginError
	switch {
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.As(err, &nl):
		login := "mcpkey login " + shellQuote(nl.Server)
		if nl.Account != "" {
			login += " --account " + shellQuote(nl.Account)
		}
		for _, s := range nl.Scopes {
			login += " --scope " + shellQuote(s)
		}
		fmt.Fprintf(w, "hint: run %s\n", login)
		return ExitNeedsLogin
	case errors.Is(err, api.ErrNeedsLogin):
		return ExitNeedsLogin
	case errors.Is(err, ipc.ErrNoAgent):
		fmt.Fprintln(w, "hint: start one with: mcpkey agent (or unset MCPKEY_NO_AUTOSTART)")
		return ExitNoAgent
	case errors.Is(err, api.ErrLocked):
		fmt.Fprintln(w, "hint: run mcpkey unlock")
		return ExitLocked
	case errors.Is(err, api.ErrDenied):
		return ExitDenied
	case errors.Is(err, api.ErrStoreUnavailable):
		fmt.Fprintln(w, "hint: is the keyring unlocked? see mcpkey status and the README's troubleshooting section")
	case errors.Is(err, api.ErrNotFound):
		fmt.Fprintln(w, "hint: mcpkey list shows the sessions the agent holds")
	case errors.Is(err, api.ErrDPoPRequired):
		fmt.Fprintln(w, "hint: a proof is made for one request: mcpkey token SERVER --dpop METHOD URL prints its Authorization and DPoP headers; mcpkey bridge and mcpkey proxy sign each request for you")
	case errors.Is(err, api.ErrTokenRejected):
		fmt.Fprintln(w, "hint: if the authorization server takes the audience as \"audience\" (Ory Hydra, Auth0), set resource_as_audience = true for the server or its issuer in the config, then run mcpkey login again")
	}
	return ExitError
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == ':' || r == '.' || r == '-' || r == '_' || r == '@' || r == '=' ||
			r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Parse parses flags that may come before or after positional arguments
// ("mcpkey login github --scope x" and "mcpkey login --scope x github")
// and wants exactly npos of them.
func Parse(fs *flag.FlagSet, args []string, npos int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, UsageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != npos {
		if npos == 0 {
			return nil, Usagef("unexpected argument %q", pos[0])
		}
		if len(pos) < npos {
			return nil, ErrMissingServer
		}
		return nil, Usagef("too many arguments")
	}
	return pos, nil
}

// MultiFlag is a repeatable string flag (--scope a --scope b); a value
// holding spaces adds each word.
type MultiFlag []string

func (m *MultiFlag) String() string { return strings.Join(*m, " ") }

// Repeatable marks the flag "may be repeated" in the man page and
// completions; another repeatable flag type implements it too.
func (m *MultiFlag) Repeatable() bool { return true }

// Set adds v's words.
func (m *MultiFlag) Set(v string) error {
	*m = append(*m, strings.Fields(v)...)
	return nil
}

// PrintJSON writes v as indented JSON.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// PromptPassphrase reads a line from the terminal on stdin without echo,
// after prompting on stderr.
func PromptPassphrase(prompt string) (string, error) {
	fmt.Fprint(os.Stderr, "mcpkey: "+prompt+": ")
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	return string(b), nil
}

// DefaultConfigPath is $MCPKEY_CONFIG, else the per-user config file.
func DefaultConfigPath() string {
	if p := os.Getenv("MCPKEY_CONFIG"); p != "" {
		return p
	}
	p, err := userdirs.ConfigPath()
	if err != nil {
		return "config.toml"
	}
	return p
}

package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/mcpkey/mcpkey/packaging"
)

// Command is one mcpkey command: its help and how it runs. Help, the man
// page and completions all read these fields and the flags Run defines.
type Command struct {
	Name    string
	Aliases string // another name ("ls" for list), or ""
	Args    string // the synopsis after the name: "<server> [flags]"
	Short   string // one line, for `mcpkey help`
	Long    string // the help text after the synopsis: what it does, examples
	// Run defines the command's flags on fs, parses args with Parse and
	// does the work. Defining every flag before parsing lets help list
	// them: it calls Run with "--help", which Parse answers with
	// flag.ErrHelp before any work is done.
	Run func(ctx context.Context, fs *flag.FlagSet, args []string) error
}

// Group is a titled group of commands in `mcpkey help`.
type Group struct {
	Title    string
	Commands []*Command
}

// Commands lists the commands of groups, in order.
func Commands(groups []Group) []*Command {
	var out []*Command
	for _, g := range groups {
		out = append(out, g.Commands...)
	}
	return out
}

// Lookup finds the command named (or aliased) name.
func Lookup(groups []Group, name string) *Command {
	for _, c := range Commands(groups) {
		if c.Name == name || (c.Aliases != "" && c.Aliases == name) {
			return c
		}
	}
	return nil
}

// Run runs the command args names (help, a usage error or the command) and
// returns the process's exit code.
func Run(ctx context.Context, f *Factory, groups []Group, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			if c := Lookup(groups, args[1]); c != nil {
				fmt.Fprint(f.IO.Out, Help(c))
				return ExitOK
			}
		}
		fmt.Fprint(f.IO.Out, Usage(groups))
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	if args[0] == "--version" {
		args[0] = "version"
	}
	c := Lookup(groups, args[0])
	if c == nil {
		fmt.Fprintf(f.IO.ErrOut, "mcpkey: unknown command %q\nhint: run mcpkey help\n", args[0])
		return ExitUsage
	}
	err := c.Run(ctx, newFlagSet(c.Name), args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(f.IO.Out, Help(c))
		return ExitOK
	}
	return Report(f.IO.ErrOut, c, err)
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("mcpkey "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// flagsOf returns the FlagSet c's Run defines, with nothing run.
func flagsOf(c *Command) *flag.FlagSet {
	fs := newFlagSet(c.Name)
	_ = c.Run(context.Background(), fs, []string{"--help"}) // defines the flags, does nothing else
	return fs
}

// Usage is `mcpkey help`: every command by group, the environment and the
// exit codes.
func Usage(groups []Group) string {
	var b strings.Builder
	b.WriteString(`mcpkey: an ssh-agent for MCP OAuth

One agent per user holds your MCP servers' OAuth sessions in the OS keyring,
signs you in through your browser, is the only process that refreshes tokens,
and hands access tokens to local programs over a Unix socket ($MCPKEY_SOCK).

usage: mcpkey <command> [flags] [args]
`)
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n", g.Title)
		for _, c := range g.Commands {
			fmt.Fprintf(w, "  %s\t%s\n", nameWithAliases(c), c.Short)
		}
	}
	w.Flush()
	b.WriteString(`
<server> is a server name from the config file or a URL.
Run 'mcpkey help <command>' for a command's flags and examples.
` + envHelp + exitHelp)
	return b.String()
}

func nameWithAliases(c *Command) string {
	if c.Aliases != "" {
		return c.Name + ", " + c.Aliases
	}
	return c.Name
}

// Help is `mcpkey help <command>`: synopsis, text and flags.
func Help(c *Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: mcpkey %s %s\n\n%s\n", c.Name, c.Args, c.Short)
	if c.Long != "" {
		b.WriteString("\n" + c.Long)
	}
	fs := flagsOf(c)
	var flags strings.Builder
	fs.SetOutput(&flags)
	fs.PrintDefaults()
	if flags.Len() > 0 {
		b.WriteString("\nflags:\n" + flags.String())
	}
	return b.String()
}

// Defs describes the commands for completions and the man page: the same
// definitions --help prints, flags included.
func Defs(groups []Group) []packaging.Command {
	var out []packaging.Command
	for _, c := range Commands(groups) {
		fs := flagsOf(c)
		flags := packaging.FlagsOf(fs)
		for i := range flags {
			if r, ok := fs.Lookup(flags[i].Name).Value.(interface{ Repeatable() bool }); ok && r.Repeatable() {
				flags[i].Repeatable = true
			}
		}
		out = append(out, packaging.Command{Name: c.Name, Aliases: c.Aliases, Args: c.Args, Short: c.Short, Long: c.Long, Flags: flags})
	}
	return out
}

const envHelp = `
environment:
  MCPKEY_SOCK             the agent's socket (default: $XDG_RUNTIME_DIR/mcpkey/agent.sock),
                          or ws://127.0.0.1:PORT/v1/ws#/path/to/agent.ws.json for its WebSocket
  MCPKEY_BACKEND          credential store for 'mcpkey agent' (default auto: the OS keyring)
  MCPKEY_CONFIG           config file (default: $XDG_CONFIG_HOME/mcpkey/config.toml)
  MCPKEY_FILE_PASSPHRASE  passphrase of the encrypted file backend (the agent takes it
                          out of its environment at start; children never see it)
  MCPKEY_FILE_PASSPHRASE_FD  a file descriptor to read that passphrase from instead
  MCPKEY_NO_AUTOSTART=1   do not start an agent when none answers
  BROWSER                 program that opens the authorization URL (one argument: the URL);
                          'mcpkey login' sends yours, with DISPLAY and WAYLAND_DISPLAY,
                          to a running agent
`

const exitHelp = `
exit codes:
  0 ok · 1 error · 2 usage · 3 login needed · 4 no agent · 5 agent locked · 6 denied · 130 interrupted
`

package cli

// About mcpkey itself: completion, man, version.

import (
	"context"
	"flag"
	"fmt"

	"github.com/mcpkey/mcpkey/packaging"
)

// NewCmdCompletion is `mcpkey completion`: the script for a shell, read
// from table (the command table, help's and the man page's).
func NewCmdCompletion(f *Factory, table func() []Group) *Command {
	return &Command{Name: "completion", Args: "bash|zsh|fish", Short: "print shell completions", Long: completionHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			pos, err := Parse(fs, args, 1)
			if err != nil {
				return err
			}
			out, err := packaging.Completion(pos[0], Defs(table()))
			if err != nil {
				return UsageError{err.Error()}
			}
			_, err = fmt.Fprint(f.IO.Out, out)
			return err
		}}
}

// NewCmdMan is `mcpkey man`: mcpkey(1), read from table.
func NewCmdMan(f *Factory, table func() []Group) *Command {
	return &Command{Name: "man", Short: "print the man page (roff)",
		Long: "Prints mcpkey(1), generated from the same command definitions as --help.\n\nexample:\n  mcpkey man | man -l -\n",
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			if _, err := Parse(fs, args, 0); err != nil {
				return err
			}
			_, err := fmt.Fprint(f.IO.Out, packaging.ManPage(Defs(table()), f.Version))
			return err
		}}
}

// NewCmdVersion is `mcpkey version` (and --version).
func NewCmdVersion(f *Factory) *Command {
	return &Command{Name: "version", Short: "print the version", Long: "usage: mcpkey version\n",
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			if _, err := Parse(fs, args, 0); err != nil {
				return err
			}
			_, err := fmt.Fprintln(f.IO.Out, "mcpkey", f.Version)
			return err
		}}
}

const completionHelp = `Prints a completion script for bash, zsh or fish.

examples:
  mcpkey completion bash > ~/.local/share/bash-completion/completions/mcpkey
  mcpkey completion zsh > "${fpath[1]}/_mcpkey"
  mcpkey completion fish > ~/.config/fish/completions/mcpkey.fish
`

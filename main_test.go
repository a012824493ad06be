package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/mcpkey/mcpkey/ipc/cli"
)

// TestCommandTable: every command of main's table has a unique name and
// alias, a synopsis and help text, and answers --help with flag.ErrHelp
// before doing anything (help, the man page and completions list a
// command's flags by running it with --help), so none starts an agent,
// prompts or writes a file when help is asked for.
func TestCommandTable(t *testing.T) {
	f := &cli.Factory{IO: &cli.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}, NoAutostart: true,
		StartAgent: func(context.Context) (int, string, error) {
			t.Error("a command started an agent for --help")
			return 0, "", errors.New("no")
		}}
	seen := map[string]bool{}
	for _, c := range cli.Commands(commands(f)) {
		for _, n := range []string{c.Name, c.Aliases} {
			if n != "" && seen[n] {
				t.Errorf("%q names two commands", n)
			}
			seen[n] = true
		}
		if c.Short == "" || c.Long == "" {
			t.Errorf("%s: no short or long help", c.Name)
		}
		fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		if err := c.Run(t.Context(), fs, []string{"--help"}); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s --help: %v, want flag.ErrHelp", c.Name, err)
		}
	}
	if len(seen) < 25 {
		t.Errorf("only %d command names", len(seen))
	}
}

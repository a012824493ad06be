package cli

// `mcpkey secret`: static secrets (API keys) in the agent's keyring.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mcpkey/mcpkey/api"
)

// SecretOptions is what `mcpkey secret` was asked.
type SecretOptions struct {
	Sub  string // set, get, list or rm
	Name string
}

// NewCmdSecret is `mcpkey secret set|get|list|rm`; runF, when not nil,
// replaces SecretRun.
func NewCmdSecret(f *Factory, runF func(context.Context, *SecretOptions) error) *Command {
	return &Command{Name: "secret", Args: "set|get|list|rm [<name>]", Short: "store API keys and other static secrets in the keyring", Long: secretHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) == 0 || strings.HasPrefix(args[0], "-") {
				if _, err := Parse(fs, args, 0); err != nil {
					return err
				}
				return Usagef("missing subcommand: set, get, list or rm")
			}
			o := &SecretOptions{Sub: args[0]}
			switch o.Sub {
			case "ls":
				o.Sub = "list"
			case "delete":
				o.Sub = "rm"
			case "set", "get", "list", "rm":
			default:
				return Usagef("unknown subcommand %q: set, get, list or rm", o.Sub)
			}
			want := 1
			if o.Sub == "list" {
				want = 0
			}
			pos, err := Parse(fs, args[1:], want)
			if err != nil {
				return err
			}
			if want == 1 {
				o.Name = pos[0]
			}
			return RunOr(ctx, runF, o, f.SecretRun)
		}}
}

// SecretRun stores, prints, lists or deletes a secret.
func (f *Factory) SecretRun(ctx context.Context, o *SecretOptions) error {
	c := f.NewClient()
	defer c.Close()
	switch o.Sub {
	case "set":
		value, err := f.readSecretValue(o.Name)
		if err != nil {
			return err
		}
		if err := f.WithAgent(ctx, func() error { return c.SetSecret(ctx, o.Name, value) }); err != nil {
			return err
		}
		fmt.Fprintf(f.IO.ErrOut, "mcpkey: stored secret %s; reference it as \"secret:%s\" in the config\n", o.Name, o.Name)
		return nil
	case "get":
		var v []byte
		if err := f.WithAgent(ctx, func() (err error) { v, err = c.Secret(ctx, o.Name); return err }); err != nil {
			return err
		}
		_, err := f.IO.Out.Write(append(v, '\n'))
		return err
	case "list":
		var names []string
		if err := f.WithAgent(ctx, func() (err error) { names, err = c.Secrets(ctx); return err }); err != nil {
			return err
		}
		for _, n := range names {
			fmt.Fprintln(f.IO.Out, n)
		}
		return nil
	case "rm":
		if err := f.WithAgent(ctx, func() error { return c.DeleteSecret(ctx, o.Name) }); err != nil {
			return err
		}
		fmt.Fprintf(f.IO.ErrOut, "mcpkey: deleted secret %s\n", o.Name)
		return nil
	}
	return Usagef("unknown subcommand %q: set, get, list or rm", o.Sub)
}

// readSecretValue reads a secret from a no-echo prompt when stdin is a
// terminal, else all of stdin (one trailing newline dropped). Never argv.
func (f *Factory) readSecretValue(name string) ([]byte, error) {
	if f.IO.InTerminal() {
		v, err := PromptPassphrase("value for " + name)
		return []byte(v), err
	}
	v, err := io.ReadAll(io.LimitReader(f.IO.In, api.MaxSecretSize+2))
	if err != nil {
		return nil, fmt.Errorf("read secret from stdin: %w", err)
	}
	v = []byte(strings.TrimSuffix(strings.TrimSuffix(string(v), "\n"), "\r"))
	if len(v) == 0 {
		return nil, errors.New("empty secret on stdin")
	}
	return v, nil
}

const secretHelp = `Stores static secrets (API keys) in the agent's keyring, for servers that take
an API key instead of OAuth. Reference them from the config as "secret:NAME"
in [servers.NAME.headers] (bridge and proxy send them) or [servers.NAME.env]
(exec puts them in the environment).

  set NAME   reads the value from a no-echo prompt, or from stdin when it is
             not a terminal; never from the command line
  get NAME   prints the value: for scripts only, since whatever captures
             stdout (a terminal's scrollback, a log) then holds it
  list       prints the names, never values
  rm NAME    deletes it

examples:
  mcpkey secret set brave-api-key
  pass show brave | mcpkey secret set brave-api-key
  mcpkey secret list
`

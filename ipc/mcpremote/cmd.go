package mcpremote

import (
	"context"
	"flag"
	"os"

	"github.com/mcpkey/mcpkey/ipc/cli"
)

// NewCmdImport is `mcpkey import`, built like ipc/cli's commands: the
// factory's streams and agent, Run doing the work (tests call Run with
// their own Env).
func NewCmdImport(f *cli.Factory) *cli.Command {
	return &cli.Command{Name: "import", Args: "mcp-remote [flags]",
		Short: "move logins other tools keep in plain files (mcp-remote) into the keyring", Long: Help,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			c := f.NewClient()
			defer c.Close()
			home, _ := os.UserHomeDir()
			wd, _ := os.Getwd()
			return Run(ctx, fs, args, Env{Client: c,
				Agent: func(call func() error) error { return f.WithAgent(ctx, call) },
				Parse: cli.Parse, Usagef: cli.Usagef, Getenv: os.Getenv, Home: home, WD: wd,
				In: f.IO.In, Err: f.IO.ErrOut, Interactive: f.IO.InTerminal()})
		}}
}

package tray

// `mcpkey tray`, and the tray of `mcpkey agent --tray`. The command is
// built like ipc/cli's commands (see its package doc).

import (
	"context"
	"flag"
	"log/slog"

	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/cli"
)

// CmdOptions is what `mcpkey tray` was asked.
type CmdOptions struct {
	NoNotifications bool
	LogLevel        slog.Level
}

// NewCmd is `mcpkey tray`: the tray as a client of the running agent (or
// of the one it starts). runF, when not nil, replaces running it.
func NewCmd(f *cli.Factory, runF func(context.Context, *CmdOptions) error) *cli.Command {
	return &cli.Command{Name: "tray", Args: "[--no-notifications]", Short: "show the tray icon (a client of the running agent)", Long: trayHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			o := &CmdOptions{LogLevel: slog.LevelWarn}
			fs.BoolVar(&o.NoNotifications, "no-notifications", false, "do not show desktop notifications")
			logLevel := fs.String("log-level", "", "debug, info, warn or error (default warn)")
			if _, err := cli.Parse(fs, args, 0); err != nil {
				return err
			}
			if *logLevel != "" {
				if err := o.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
					return cli.Usagef("--log-level: %q is not one of debug, info, warn, error", *logLevel)
				}
			}
			if runF != nil {
				return runF(ctx, o)
			}
			log := slog.New(slog.NewTextHandler(f.IO.ErrOut, &slog.HandlerOptions{Level: o.LogLevel}))
			c := f.NewClient()
			c.Name = "mcpkey-tray"
			defer c.Close()
			return Run(ctx, c, Options{Logger: log, NoNotifications: o.NoNotifications})
		}}
}

// ForAgent runs the tray for the agent on socket, with that agent's logger
// and config path: ipc/server's Options.Tray for `mcpkey agent --tray`.
func ForAgent(ctx context.Context, socket string, log *slog.Logger, configPath string) error {
	c := &ipc.Client{Path: socket, Name: "mcpkey-tray"}
	defer c.Close()
	return Run(ctx, c, Options{Logger: log, ConfigPath: configPath})
}

const trayHelp = `Shows mcpkey's tray icon: every session with its state ("valid 42 min",
"needs login", "error: …"), Log in / Log out / Log out and revoke, pending
approvals, Lock / Unlock, Open config and Open log. The icon turns amber when
a session needs a login or an approval waits. Desktop notifications say when a
login is needed (click to sign in) and when a sign-in finished.

The tray is a client of the agent over its socket and holds no tokens. Without
a running agent it offers "Start agent" and reconnects by itself. Without a
desktop session (no D-Bus session bus) it says so and exits; everything it does
is also a command. 'mcpkey agent --tray' runs the agent and the tray in one
process, which is what 'mcpkey install --tray' sets up.

examples:
  mcpkey tray
  mcpkey agent --tray
`

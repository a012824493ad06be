package cli

// Running mcpkey as a service: install, uninstall.

import (
	"context"
	"flag"
	"os"

	"github.com/mcpkey/mcpkey/packaging"
)

// InstallOptions is what `mcpkey install` or `mcpkey uninstall` was asked.
type InstallOptions struct {
	Uninstall bool
	Tray      bool // install: also the tray
	DryRun    bool
}

// NewCmdInstall is `mcpkey install`; runF, when not nil, replaces
// InstallRun.
func NewCmdInstall(f *Factory, runF func(context.Context, *InstallOptions) error) *Command {
	return &Command{Name: "install", Args: "[--tray] [--dry-run]", Short: "start the agent at login (systemd user units, LaunchAgents, Run key)", Long: installHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			o := &InstallOptions{}
			fs.BoolVar(&o.Tray, "tray", false, "also start the tray at login (XDG autostart, LaunchAgent)")
			fs.BoolVar(&o.DryRun, "dry-run", false, "print what would be done, change nothing")
			if _, err := Parse(fs, args, 0); err != nil {
				return err
			}
			return RunOr(ctx, runF, o, f.InstallRun)
		}}
}

// NewCmdUninstall is `mcpkey uninstall`; runF, when not nil, replaces
// InstallRun.
func NewCmdUninstall(f *Factory, runF func(context.Context, *InstallOptions) error) *Command {
	return &Command{Name: "uninstall", Args: "[--dry-run]", Short: "undo mcpkey install", Long: uninstallHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			o := &InstallOptions{Uninstall: true}
			fs.BoolVar(&o.DryRun, "dry-run", false, "print what would be done, change nothing")
			if _, err := Parse(fs, args, 0); err != nil {
				return err
			}
			return RunOr(ctx, runF, o, f.InstallRun)
		}}
}

// InstallRun sets mcpkey up to start at login, or undoes that, printing
// every file and command.
func (f *Factory) InstallRun(ctx context.Context, o *InstallOptions) error {
	uid := os.Getuid()
	opts := packaging.InstallOptions{Tray: o.Tray, DryRun: o.DryRun, Out: f.IO.Out, UID: &uid}
	var err error
	if o.Uninstall {
		_, err = packaging.Uninstall(opts)
	} else {
		_, err = packaging.Install(opts)
	}
	return err
}

const installHelp = `Sets mcpkey up to start at login, for this user (never as root):
Linux: systemd user units (mcpkey.socket starts the agent on first use) in
~/.config/systemd/user, enabled with systemctl --user; with --tray an XDG
autostart entry for 'mcpkey agent --tray'. macOS: LaunchAgents. Windows: the
per-user Run key. Prints every file it writes and command it runs; running it
again changes nothing.

examples:
  mcpkey install --dry-run
  mcpkey install --tray
`
const uninstallHelp = `Stops and removes what 'mcpkey install' set up. Credentials stay in the keyring.

examples:
  mcpkey uninstall --dry-run
  mcpkey uninstall
`

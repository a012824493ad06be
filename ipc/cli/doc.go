// Package cli is mcpkey's command line: the command type, dispatch, help,
// exit codes and `hint:` lines, and the commands that are clients of the
// agent — login, token, list, status, logout (sessions.go); approvals,
// approve, deny, lock, unlock (policy.go); socket (sockets.go); secret
// (secrets.go); install, uninstall (service.go); completion, man, version
// (meta.go).
//
// It links only the wire (package ipc and api) and small helpers: never the
// agent engine, the keyring, D-Bus or the MCP SDK (TestCLILinksOnlyTheWire).
// Commands that need more live beside what they drive and are built the
// same way: bridge, exec, proxy, probe and config in ipc/launch; agent
// (server.Run) and log in ipc/server; tray in package tray. main holds only
// the table of them all, in help's groups and order, and calls Run.
//
//	main → ipc/cli, ipc/launch, ipc/server, tray
//	ipc/launch, ipc/server, tray → ipc/cli → ipc → api
//
// # A command
//
// Every command has the shape of gh's NewCmdX(f, runF):
//
//	// XOptions is what `mcpkey x` was asked.
//	type XOptions struct{ Server string; JSON bool }
//
//	func NewCmdX(f *Factory, runF func(context.Context, *XOptions) error) *Command {
//		return &Command{Name: "x", Args: "<server> [--json]", Short: "…", Long: xHelp,
//			Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
//				o := &XOptions{}
//				fs.BoolVar(&o.JSON, "json", false, "print JSON")
//				// flags before or after <server>; runF, else f.XRun
//				return RunServer(ctx, fs, args, &o.Server, runF, o, f.XRun)
//			}}
//	}
//
//	// XRun does the work, writing to f.IO and asking the agent through
//	// f.NewClient (ask or f.WithAgent start one when none answers).
//	func (f *Factory) XRun(ctx context.Context, o *XOptions) error { … }
//
// The Factory carries the streams (IOStreams), how to reach the agent
// (Client, NoAutostart, StartAgent) and the version; tests build one around
// buffers and a private agent's socket, and call Run with the whole table
// (exit code, stdout, stderr) or XRun with options. A test that checks only
// flag parsing passes a runF that records the options. Commands with other
// arguments call Parse and then RunOr.
//
// To add a flag: a field in XOptions and one fs.XxxVar line before Parse;
// help, the man page and completions (packaging, via Defs) list it from the
// FlagSet, so there is nothing else to update but the Long text's examples
// and the README. A repeatable flag is a MultiFlag. Secrets are never flags:
// read them from a file (safefile.ReadSecret), a no-echo prompt or stdin.
//
// To add a command: a NewCmdX in the file of its group (or in the package
// whose code it drives, when that package links what ipc/cli must not), and
// one line in main's table, in the group `mcpkey help` shows it under.
//
// # Errors and exit codes
//
// Run returns what Report maps the command's error to: a UsageError
// (Usagef, Parse's errors) is exit code 2 with "hint: run mcpkey help X";
// the wire's sentinels (api.ErrNeedsLogin 3, ipc.ErrNoAgent 4,
// api.ErrLocked 5, api.ErrDenied 6, context.Canceled 130) get their code
// and a hint line naming the fix; anything else is 1. Messages are
// lowercase and start with "mcpkey:". Commands never call os.Exit (exec's
// child exit code on Windows aside).
package cli

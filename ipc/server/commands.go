package server

// The commands that need the agent itself: `mcpkey agent` (Run) and
// `mcpkey log` (the audit log the agent writes). They are built like
// ipc/cli's commands (see its package doc); they live here because ipc/cli
// must not link the agent.

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/config"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/cli"
)

// NewCmdAgent is `mcpkey agent`: its flags make the Options for Run. tray,
// when not nil, is Options.Tray for --tray (main passes the tray package's;
// this package never imports it). runF, when not nil, replaces Run.
func NewCmdAgent(f *cli.Factory, tray func(ctx context.Context, socket string, log *slog.Logger, configPath string) error, runF func(context.Context, Options) error) *cli.Command {
	return &cli.Command{Name: "agent", Args: "[flags]", Short: "run the agent in the foreground", Long: agentHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			var o Options
			fs.StringVar(&o.Socket, "socket", "", "socket path (default $MCPKEY_SOCK or the per-user runtime dir)")
			fs.StringVar(&o.Backend, "backend", "", "credential store: auto, secret-service, kwallet, keychain, wincred, keyctl, pass, file, memory")
			fs.StringVar(&o.ConfigPath, "config", "", "config file (default "+cli.DefaultConfigPath()+")")
			logLevel := fs.String("log-level", "", "debug, info, warn or error (default info)")
			fs.StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the file backend's passphrase")
			fs.DurationVar(&o.KeyringTimeout, "keyring-timeout", 0, "bound on every keyring call (default 10s)")
			fs.BoolVar(&o.WebSocket, "ws", false, "also serve the protocol on a loopback WebSocket, for clients that cannot open the socket (URL and secret in agent.ws.json next to the socket; X.ws.json for a socket X.sock)")
			fs.StringVar(&o.WSListen, "ws-listen", "", "the WebSocket's loopback address; implies --ws (default the config's ws_listen, else "+config.DefaultWSListen+")")
			fs.BoolVar(&o.Confirm, "confirm", false, "ask before handing a token to any program not on the config's allow list")
			fs.StringVar(&o.AuditLog, "audit-log", "", "audit log path, or off (default $MCPKEY_AUDIT_LOG or "+DefaultAuditPath()+")")
			withTray := fs.Bool("tray", false, "also show the tray icon; it talks to this agent over the socket (with an agent already running, only the tray starts)")
			if _, err := cli.Parse(fs, args, 0); err != nil {
				return err
			}
			o.ConfigPath = cmp.Or(o.ConfigPath, cli.DefaultConfigPath())
			o.Version = f.Version
			if *logLevel != "" {
				var lv slog.Level
				if err := lv.UnmarshalText([]byte(*logLevel)); err != nil {
					return cli.Usagef("--log-level: %q is not one of debug, info, warn, error", *logLevel)
				}
				o.LogLevel = &lv
			}
			if f.IO.InTerminal() {
				o.Foreground = true
				o.Passphrase = cli.PromptPassphrase
			}
			if o.Socket == "" {
				var err error
				if o.Socket, err = ipc.DefaultSocketPath(); err != nil {
					return err
				}
			}
			if strings.HasPrefix(o.Socket, "ws://") {
				return cli.Usagef("MCPKEY_SOCK holds a WebSocket URL, which only clients use; pass the agent a socket path with --socket")
			}
			if *withTray {
				o.Tray = tray
			}
			if runF != nil {
				return runF(ctx, o)
			}
			return Run(ctx, o)
		}}
}

// LogOptions is what `mcpkey log` was asked.
type LogOptions struct {
	Follow bool
	Server string // only records for this server (name or URL)
	JSON   bool
	Path   string
}

// NewCmdLog is `mcpkey log`; runF, when not nil, replaces LogRun.
func NewCmdLog(f *cli.Factory, runF func(context.Context, *LogOptions) error) *cli.Command {
	return &cli.Command{Name: "log", Args: "[-f] [--server S] [--json]", Short: "show the audit log", Long: logHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			o := &LogOptions{}
			fs.BoolVar(&o.Follow, "f", false, "follow: print records as they are written")
			fs.StringVar(&o.Server, "server", "", "only records for this server (name or URL)")
			fs.BoolVar(&o.JSON, "json", false, "print the JSON lines as stored")
			fs.StringVar(&o.Path, "path", "", "audit log (default "+DefaultAuditPath()+")")
			if _, err := cli.Parse(fs, args, 0); err != nil {
				return err
			}
			return cli.RunOr(ctx, runF, o, func(ctx context.Context, o *LogOptions) error { return LogRun(ctx, f, o) })
		}}
}

// LogRun prints the audit log's records (all, or one server's), and with
// Follow those written after.
func LogRun(ctx context.Context, f *cli.Factory, o *LogOptions) error {
	p := cmp.Or(o.Path, DefaultAuditPath())
	want := ""
	if o.Server != "" {
		if strings.Contains(o.Server, "://") {
			want, _ = agent.CanonicalServerURL(o.Server)
		} else if s, err := agent.LoadSettings(cli.DefaultConfigPath()); err == nil {
			if ss, ok := s.Server(o.Server); ok {
				want, _ = agent.CanonicalServerURL(ss.URL)
			}
		}
		if want == "" {
			return cli.Usagef("--server: %q is neither a configured server nor a URL", o.Server)
		}
	}
	out := bufio.NewWriter(f.IO.Out)
	defer out.Flush()
	err := agent.ReadAudit(ctx, p, agent.AuditReadOptions{Follow: o.Follow}, func(r agent.AuditRecord, line []byte) error {
		if want != "" && r.Server != want {
			return nil
		}
		if o.JSON {
			out.Write(line)
			out.WriteByte('\n')
		} else {
			fmt.Fprintln(out, r.String())
		}
		if o.Follow {
			return out.Flush()
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no audit log at %s yet", p)
	}
	return err
}

const agentHelp = `Runs the agent in the foreground (service managers and 'mcpkey install' run it
this way). It listens on $MCPKEY_SOCK or the per-user default, refuses to start
while another agent of yours runs (one per user, on any socket; the message
names its pid and socket), and keeps credentials in the OS keyring:
Keychain, Windows Credential Manager, Secret Service or KWallet. Where there is
none (a headless box), choose --backend file (encrypted with a passphrase) or
keyctl (kernel memory, gone at reboot). On Linux with no Secret Service or
KWallet at all (no D-Bus session bus: SSH, containers, CI) the default falls back
to keyctl and says so here, in 'mcpkey status' and at the first login. It never
falls back to plaintext.

SIGINT/SIGTERM stop it cleanly; SIGHUP reloads the config file, which is also
watched for changes.

examples:
  mcpkey agent
  mcpkey agent --backend file --passphrase-file ~/.config/mcpkey/passphrase
  MCPKEY_SOCK=/tmp/mk.sock mcpkey agent --backend memory --log-level debug
  mcpkey agent --ws    # also a loopback WebSocket; URL and secret in agent.ws.json
`
const logHelp = `Shows the audit log: JSON lines under $XDG_STATE_HOME/mcpkey/audit.jsonl
(rotated at 10 MB, three old files kept), one per token issued (once per
program, server and token), refresh, login, logout, approval asked and
answered, denial, lock and unlock, with the time, server, account, scopes and
the caller's executable and pid. It never holds token material.

examples:
  mcpkey log
  mcpkey log -f --server github
  mcpkey log --json | jq 'select(.event == "denied")'
`

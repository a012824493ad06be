// Command mcpkey is an ssh-agent for MCP OAuth: one per-user agent holds the
// user's MCP OAuth sessions in the OS keyring, runs the logins, is the only
// process that refreshes tokens, and hands audience-bound access tokens to
// local programs over a Unix socket.
//
// This file only wires commands to the agent, ipc and tray packages.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/api"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/launch"
	"github.com/mcpkey/mcpkey/packaging"
	"github.com/mcpkey/mcpkey/tray"
	"golang.org/x/term"

	"github.com/mcpkey/mcpkey/internal/safefile"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// version is stamped with -ldflags "-X main.version=…"; otherwise the module
// version from the build info is used.
var version = ""

// Exit codes, documented in `mcpkey help` and the README.
const (
	exitOK          = 0
	exitError       = 1   // any other failure
	exitUsage       = 2   // bad command line
	exitNeedsLogin  = 3   // no usable session: run mcpkey login
	exitNoAgent     = 4   // no agent answers (MCPKEY_NO_AUTOSTART=1) or it could not start
	exitLocked      = 5   // the agent is locked
	exitDenied      = 6   // the agent refused the request
	exitInterrupted = 130 // Ctrl-C
)

type command struct {
	name, aliases, args, short, long string
	// run parses args with fs and does the work.
	run func(ctx context.Context, fs *flag.FlagSet, args []string) error
}

var commands []*command // filled in init: the table is data, read by help

func init() {
	commands = []*command{
		{name: "agent", args: "[flags]", short: "run the agent in the foreground", long: agentHelp, run: runAgent},
		{name: "login", args: "<server> [flags]", short: "sign in to an MCP server (OAuth, in your browser)", long: loginHelp, run: runLogin},
		{name: "token", args: "<server> [flags]", short: "print an access token for a server (for scripts)", long: tokenHelp, run: runToken},
		{name: "list", aliases: "ls", args: "[--json]", short: "list sessions", long: listHelp, run: runList},
		{name: "status", args: "[--json]", short: "show the agent's state", long: statusHelp, run: runStatus},
		{name: "logout", args: "<server> [flags]", short: "remove a session and revoke it at the authorization server", long: logoutHelp, run: runLogout},
		{name: "tray", args: "[--no-notifications]", short: "show the tray icon (a client of the running agent)", long: trayHelp, run: runTray},
		{name: "probe", args: "<server> [flags]", short: "connect to an MCP server with the agent's token and list its tools", long: probeHelp, run: runProbe},
		{name: "bridge", args: "<server> [flags]", short: "be a stdio MCP server relaying to a remote one, with the agent's token", long: bridgeHelp, run: runBridge},
		{name: "exec", args: "[<server>] [flags] -- <command> [args]", short: "run a command with tokens and secrets in its environment", long: execHelp, run: runExec},
		{name: "proxy", args: "[flags]", short: "serve local HTTP MCP endpoints that add the agent's tokens", long: proxyHelp, run: runProxy},
		{name: "secret", args: "set|get|list|rm [<name>]", short: "store API keys and other static secrets in the keyring", long: secretHelp, run: runSecret},
		{name: "config", args: "snippet <host> <server> [flags]", short: "print an MCP host's configuration for a server", long: configHelp, run: runConfig},
		{name: "install", args: "[--tray] [--dry-run]", short: "start the agent at login (systemd user units, LaunchAgents, Run key)", long: installHelp, run: runInstall},
		{name: "uninstall", args: "[--dry-run]", short: "undo mcpkey install", long: uninstallHelp, run: runUninstall},
		{name: "completion", args: "bash|zsh|fish", short: "print shell completions", long: completionHelp, run: runCompletion},
		{name: "man", short: "print the man page (roff)", long: "Prints mcpkey(1), generated from the same command definitions as --help.\n\nexample:\n  mcpkey man | man -l -\n", run: runMan},
		{name: "version", short: "print the version", long: "usage: mcpkey version\n", run: runVersion},
	}
	commands = append(commands, policyCommands()...)
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				fmt.Print(helpFor(c))
				return exitOK
			}
		}
		fmt.Print(usage())
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" {
		args[0] = "version"
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(os.Stderr, "mcpkey: unknown command %q\nhint: run mcpkey help\n", args[0])
		return exitUsage
	}
	fs := flag.NewFlagSet("mcpkey "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := c.run(ctx, fs, args[1:])
	return report(c, err)
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name || (c.aliases != "" && c.aliases == name) {
			return c
		}
	}
	return nil
}

// usageError marks a bad command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// errMissingServer is parse's answer when a required <server> is absent.
var errMissingServer error = usageError{"missing <server>"}

// report prints err the mcpkey way (lowercase, a hint where the fix is known)
// and maps it to an exit code.
func report(c *command, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Print(helpFor(c))
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(os.Stderr, "mcpkey %s: %s\nhint: run mcpkey help %s\n", c.name, ue.msg, c.name)
		return exitUsage
	}
	fmt.Fprintf(os.Stderr, "mcpkey: %s\n", err)
	var nl *agent.NeedsLoginError
	switch {
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &nl):
		login := "mcpkey login " + shellQuote(nl.Server)
		if nl.Account != "" {
			login += " --account " + shellQuote(nl.Account)
		}
		for _, s := range nl.Scopes {
			login += " --scope " + shellQuote(s)
		}
		fmt.Fprintf(os.Stderr, "hint: run %s\n", login)
		return exitNeedsLogin
	case errors.Is(err, agent.ErrNeedsLogin):
		return exitNeedsLogin
	case errors.Is(err, ipc.ErrNoAgent):
		fmt.Fprintln(os.Stderr, "hint: start one with: mcpkey agent (or unset MCPKEY_NO_AUTOSTART)")
		return exitNoAgent
	case errors.Is(err, agent.ErrLocked):
		fmt.Fprintln(os.Stderr, "hint: run mcpkey unlock")
		return exitLocked
	case errors.Is(err, agent.ErrDenied):
		return exitDenied
	case errors.Is(err, agent.ErrStoreUnavailable):
		fmt.Fprintln(os.Stderr, "hint: is the keyring unlocked? see mcpkey status and the README's troubleshooting section")
	case errors.Is(err, agent.ErrNotFound):
		fmt.Fprintln(os.Stderr, "hint: mcpkey list shows the sessions the agent holds")
	case errors.Is(err, agent.ErrTokenRejected):
		fmt.Fprintln(os.Stderr, "hint: if the authorization server takes the audience as \"audience\" (Ory Hydra, Auth0), set resource_as_audience = true for the server or its issuer in the config, then run mcpkey login again")
	}
	return exitError
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

// parse parses flags that may come before or after positional arguments
// ("mcpkey login github --scope x" and "mcpkey login --scope x github").
func parse(fs *flag.FlagSet, args []string, npos int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
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
			return nil, usagef("unexpected argument %q", pos[0])
		}
		if len(pos) < npos {
			return nil, errMissingServer
		}
		return nil, usagef("too many arguments")
	}
	return pos, nil
}

// multiFlag is a repeatable string flag (--scope a --scope b).
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error {
	for _, s := range strings.Fields(v) {
		*m = append(*m, s)
	}
	return nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func runVersion(ctx context.Context, fs *flag.FlagSet, args []string) error {
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	fmt.Println("mcpkey", buildVersion())
	return nil
}

// ---- agent ----

func runAgent(ctx context.Context, fs *flag.FlagSet, args []string) error {
	socket := fs.String("socket", "", "socket path (default $MCPKEY_SOCK or the per-user runtime dir)")
	backend := fs.String("backend", "", "credential store: auto, secret-service, kwallet, keychain, wincred, keyctl, pass, file, memory")
	config := fs.String("config", "", "config file (default "+defaultConfigPath()+")")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default info)")
	passFile := fs.String("passphrase-file", "", "file holding the file backend's passphrase")
	timeout := fs.Duration("keyring-timeout", 0, "bound on every keyring call (default 10s)")
	wsOn := fs.Bool("ws", false, "also serve the protocol on a loopback WebSocket, for clients that cannot open the socket (URL and secret in agent.ws.json next to the socket; X.ws.json for a socket X.sock)")
	wsListen := fs.String("ws-listen", "", "the WebSocket's loopback address; implies --ws (default the config's ws_listen, else "+agent.DefaultWSListen+")")
	confirm := fs.Bool("confirm", false, "ask before handing a token to any program not on the config's allow list")
	auditLog := fs.String("audit-log", "", "audit log path, or off (default $MCPKEY_AUDIT_LOG or "+defaultAuditPath()+")")
	withTray := fs.Bool("tray", false, "also show the tray icon; it talks to this agent over the socket (with an agent already running, only the tray starts)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	cfgPath := *config
	if cfgPath == "" {
		cfgPath = defaultConfigPath()
	}
	settings, err := agent.LoadSettings(cfgPath)
	if err != nil {
		return err
	}
	lv := settings.LogLevel
	if *logLevel != "" {
		if err := lv.UnmarshalText([]byte(*logLevel)); err != nil {
			return usagef("--log-level: %q is not one of debug, info, warn, error", *logLevel)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	be := firstNonEmpty(*backend, os.Getenv("MCPKEY_BACKEND"), settings.Backend, "auto")

	// The file backend's passphrase leaves the environment block (a re-exec,
	// same pid), so /proc/PID/environ and children never show it.
	if err := store.HidePassphrase(); err != nil {
		return err
	}
	// 99designs/keyring decides at package init whether Secret Service is
	// usable, and mcpkey keeps that init off D-Bus unless asked (see
	// agent/store/internal/busguard): the agent re-executes itself, same
	// pid, with the marker that lets the init talk to the bus.
	if store.SecretServiceNeedsReexec(be) {
		exe, err := os.Executable()
		if err == nil {
			err = syscall.Exec(exe, os.Args, store.ReexecEnv())
		}
		return fmt.Errorf("re-exec for the Secret Service: %w", err)
	}
	os.Unsetenv(store.ReexecMarker) // not for the browser and other children
	// Taken now, whatever the backend, so its descriptor reaches no child.
	envPass, err := store.TakePassphrase()
	if err != nil {
		return err
	}

	path := *socket
	if path == "" {
		if path, err = ipc.DefaultSocketPath(); err != nil {
			return err
		}
	}
	if strings.HasPrefix(path, "ws://") {
		return usagef("MCPKEY_SOCK holds a WebSocket URL, which only clients use; pass the agent a socket path with --socket")
	}
	// Socket activation (systemd's mcpkey.socket) hands the listener over.
	ln, activated, err := packaging.ActivationListener()
	if err == nil && !activated {
		ln, err = ipc.Listen(path)
	}
	// One agent per user, whatever its socket: the per-user lock, taken
	// once the socket is ours (so that probing systemd's socket, which
	// starts the service, never finds the lock taken by this process).
	var userLock *ipc.AgentLock
	if err == nil {
		if userLock, err = ipc.LockAgent(); err != nil {
			ln.Close()
		}
	}
	var running *ipc.AlreadyRunningError
	if *withTray && errors.As(err, &running) && running.Path != "" {
		// Desktop autostart runs "agent --tray" even where a service
		// already runs the agent: then the tray alone is wanted.
		log.Info("an agent is already running; starting only the tray", "socket", running.Path)
		return trayOnly(ctx, &ipc.Client{Path: running.Path, Name: "mcpkey-tray"}, tray.Options{Logger: log, ConfigPath: cfgPath})
	}
	if err != nil {
		return err
	}
	defer userLock.Close()
	if a := ln.Addr().String(); activated && a != "" {
		path = a
	}
	defer ln.Close()
	if err := userLock.Publish(path); err != nil {
		return err
	}

	// The loopback WebSocket, for clients that cannot open the socket.
	wsAddr := firstNonEmpty(*wsListen, settings.WSListen)
	if wsAddr == "" && *wsOn {
		wsAddr = agent.DefaultWSListen
	}
	var wsLn net.Listener
	var wsInfo ipc.WebSocketInfo
	if wsAddr != "" {
		if wsLn, wsInfo, err = ipc.PublishWebSocket(wsAddr, ipc.WebSocketInfoPath(path)); err != nil {
			return err
		}
		defer wsLn.Close() // removes agent.ws.json if still ours
	}

	st, err := openStore(ctx, be, firstNonEmpty(*passFile, settings.PassphraseFile), envPass, firstDuration(*timeout, settings.KeyringTimeout), log)
	if err != nil {
		return err
	}
	a, err := agent.New(ctx, agent.Config{
		Store: st, Settings: settings, ConfigPath: cfgPath, Logger: log,
		Version: buildVersion(), Socket: path, WebSocketURL: wsInfo.URL,
		Confirm: *confirm, Audit: agent.AuditOptions{Path: auditPath(*auditLog)},
	})
	if err != nil {
		return err
	}
	defer a.Close()

	w, err := agent.WatchSettings(ctx, cfgPath, agent.WatchOptions{Current: settings, Logger: log}, a.ApplySettings, a.ConfigRejected)
	if err != nil {
		// Not fatal: SIGHUP still reloads.
		log.Warn("not watching the config file", "err", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if w != nil {
				w.Reload() // the outcome reaches ApplySettings or ConfigRejected
				continue
			}
			if s, err := agent.LoadSettings(cfgPath); err != nil {
				a.ConfigRejected(err)
			} else {
				a.ApplySettings(s)
			}
		}
	}()
	if isTerminal(os.Stdin) {
		log.Warn("the agent runs in the foreground here; `mcpkey install` sets it up as a service")
	}
	log.Info("listening", "socket", path, "backend", st.Backend(), "pid", os.Getpid())
	srv := server.NewServer(a, server.ServerOptions{Logger: log})
	serveRestricted(ctx, srv, a, path, log)
	if wsLn != nil {
		stopWS, err := serveWebSocket(ctx, srv, wsLn, wsInfo, settings.WSAllowedOrigins, log)
		if err != nil {
			return err
		}
		defer stopWS()
	}
	if *withTray {
		err = serveWithTray(ctx, srv, ln, &ipc.Client{Path: path, Name: "mcpkey-tray"}, tray.Options{Logger: log, ConfigPath: cfgPath})
	} else {
		err = srv.Serve(ctx, ln)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("agent stopped")
	return nil
}

// serveWebSocket serves srv's protocol on the loopback WebSocket as well,
// until stop, which waits for its connections to end.
func serveWebSocket(ctx context.Context, srv *server.Server, ln net.Listener, info ipc.WebSocketInfo, origins []string, log *slog.Logger) (stop func(), err error) {
	ws, err := server.NewWebSocketServer(srv, server.WebSocketOptions{Secret: info.Secret, AllowedOrigins: origins, Logger: log})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := ws.Serve(ctx, ln); err != nil {
			log.Error("websocket stopped", "err", err)
		}
	}()
	log.Info("listening", "websocket", info.URL, "origins", len(origins))
	return func() { cancel(); <-done }, nil
}

// serveWithTray serves the agent in goroutines and the tray on this, the
// main, goroutine. The tray is still a client: it reaches the agent through
// c, over the socket, like any other program. Quit in the tray stops both;
// without a tray host the agent carries on alone.
func serveWithTray(ctx context.Context, srv *server.Server, ln net.Listener, c *ipc.Client, opts tray.Options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	err := tray.Run(ctx, c, opts)
	c.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcpkey: %v; the agent carries on without it\n", err)
		return <-served
	}
	cancel() // Quit
	return <-served
}

// trayOnly runs the tray as a client of the agent on c.
func trayOnly(ctx context.Context, c *ipc.Client, opts tray.Options) error {
	defer c.Close()
	return tray.Run(ctx, c, opts)
}

func runTray(ctx context.Context, fs *flag.FlagSet, args []string) error {
	noNotify := fs.Bool("no-notifications", false, "do not show desktop notifications")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default warn)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	lv := slog.LevelWarn
	if *logLevel != "" {
		if err := lv.UnmarshalText([]byte(*logLevel)); err != nil {
			return usagef("--log-level: %q is not one of debug, info, warn, error", *logLevel)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	return trayOnly(ctx, &ipc.Client{Name: "mcpkey-tray"}, tray.Options{Logger: log, NoNotifications: *noNotify})
}

// openStore opens the credential store; envPass is the passphrase taken
// from the environment or a descriptor (store.TakePassphrase).
func openStore(ctx context.Context, backend, passFile, envPass string, timeout time.Duration, log *slog.Logger) (store.Store, error) {
	if backend == "memory" {
		return store.NewMemory(), nil
	}
	cfg := store.KeyringConfig{Backend: backend, Timeout: timeout, Logger: log}
	if backend == "file" {
		cfg.Passphrase = func(prompt string) (string, error) {
			if passFile != "" {
				return agent.ReadSecretFile(passFile)
			}
			if envPass != "" {
				return envPass, nil
			}
			if isTerminal(os.Stdin) {
				return promptPassphrase(prompt)
			}
			return "", errors.New("the file backend needs a passphrase: set MCPKEY_FILE_PASSPHRASE, pass --passphrase-file, or run the agent in a terminal")
		}
	}
	return store.OpenContext(ctx, cfg)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func firstDuration(d ...time.Duration) time.Duration {
	for _, v := range d {
		if v != 0 {
			return v
		}
	}
	return 0
}

func defaultConfigPath() string {
	if p := os.Getenv("MCPKEY_CONFIG"); p != "" {
		return p
	}
	p, err := agent.DefaultConfigPath()
	if err != nil {
		return "config.toml"
	}
	return p
}

// ---- client commands ----

// ask runs call with a client of the agent; see withAgent.
func ask[T any](ctx context.Context, call func(*ipc.Client) (T, error)) (T, error) {
	c := &ipc.Client{}
	defer c.Close()
	var v T
	err := withAgent(ctx, c, func() (err error) { v, err = call(c); return err })
	return v, err
}

// withAgent runs call against the agent; when no agent answers it starts
// one in the background (as gpg-agent does) and calls again, unless
// MCPKEY_NO_AUTOSTART=1.
func withAgent(ctx context.Context, c *ipc.Client, call func() error) error {
	err := call()
	if !errors.Is(err, ipc.ErrNoAgent) || os.Getenv("MCPKEY_NO_AUTOSTART") == "1" {
		return err
	}
	pid, logPath, serr := ipc.StartAgent(ctx, ipc.StartOptions{})
	if serr != nil {
		return serr
	}
	fmt.Fprintf(os.Stderr, "mcpkey: no agent was running; started one (pid %d, log %s)\n", pid, logPath)
	return call()
}

func runToken(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var scopes multiFlag
	fs.Var(&scopes, "scope", "a scope the token must carry (repeatable)")
	account := fs.String("account", "", "account label, when a server has several sessions")
	minTTL := fs.Duration("min-ttl", 0, "least remaining lifetime accepted (refresh first otherwise)")
	asJSON := fs.Bool("json", false, "print the token and its metadata as JSON")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	tok, err := ask(ctx, func(c *ipc.Client) (agent.Token, error) {
		return c.Token(ctx, agent.TokenRequest{Server: pos[0], Account: *account, Scopes: scopes, MinTTL: *minTTL})
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(tok)
	}
	_, err = fmt.Println(tok.AccessToken)
	return err
}

func runList(ctx context.Context, fs *flag.FlagSet, args []string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	ss, err := ask(ctx, func(c *ipc.Client) ([]agent.SessionInfo, error) { return c.Sessions(ctx) })
	if err != nil {
		return err
	}
	if *asJSON {
		if ss == nil {
			ss = []agent.SessionInfo{}
		}
		return printJSON(ss)
	}
	if len(ss) == 0 {
		fmt.Fprintln(os.Stderr, "mcpkey: no sessions; sign in with: mcpkey login <server>")
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "SERVER\tNAME\tACCOUNT\tGRANT\tSTATE\tEXPIRES\tSCOPES")
	now := time.Now()
	var broken []agent.SessionInfo
	for _, s := range ss {
		state := string(s.State)
		if s.State == agent.StateReady {
			state = "valid"
		}
		server := s.Server
		if s.State == agent.StateBroken {
			broken = append(broken, s)
			if server == "" {
				server = "(unreadable) " + s.ID
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", server, dash(s.Name), dash(s.Account), api.GrantLabel(s.Grant), state,
			expiresIn(s.ExpiresAt, now), dash(strings.Join(s.Scopes, " ")))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, s := range broken {
		fmt.Fprintf(os.Stderr, "mcpkey: %s\n", s.Error)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func expiresIn(t, now time.Time) string {
	d := t.Sub(now).Round(time.Second)
	switch {
	case t.IsZero():
		return "no expiry given"
	case d <= 0:
		return "expired"
	case d < time.Minute:
		return fmt.Sprintf("in %ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("in %dm", int(d.Minutes()))
	default:
		return fmt.Sprintf("in %dh", int(d.Hours()))
	}
}

func runStatus(ctx context.Context, fs *flag.FlagSet, args []string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	st, err := ask(ctx, func(c *ipc.Client) (agent.Status, error) { return c.Status(ctx) })
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(st)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	up := time.Since(st.Started).Round(time.Second)
	fmt.Fprintf(w, "agent:\trunning (pid %d, version %s, up %s)\n", st.PID, st.Version, up)
	fmt.Fprintf(w, "socket:\t%s\n", st.Socket)
	if st.WebSocketURL != "" {
		fmt.Fprintf(w, "websocket:\t%s\n", st.WebSocketURL)
	}
	fmt.Fprintf(w, "storage:\t%s\n", st.StoreBackend)
	if st.StoreNotice != "" {
		fmt.Fprintf(w, "\t(%s)\n", st.StoreNotice)
	}
	if st.StoreUsage != "" {
		fmt.Fprintf(w, "quota:\t%s\n", st.StoreUsage)
	}
	lock := "unlocked"
	if st.Locked {
		lock = "locked"
	}
	fmt.Fprintf(w, "state:\t%s\n", lock)
	fmt.Fprintf(w, "sessions:\t%d (%d need login", st.Sessions, st.NeedsLogin)
	if st.Broken > 0 {
		fmt.Fprintf(w, ", %d broken", st.Broken)
	}
	if st.Loading > 0 {
		fmt.Fprintf(w, ", %d not read yet", st.Loading)
	}
	fmt.Fprintln(w, ")")
	if len(st.Grants) > 0 {
		fmt.Fprintf(w, "grants:\t%s\n", api.GrantCounts(st.Grants))
	}
	if st.PendingLogins > 0 {
		fmt.Fprintf(w, "logins:\t%d in progress\n", st.PendingLogins)
	}
	fmt.Fprintf(w, "config:\t%s\n", dash(st.ConfigPath))
	if st.ConfigError != "" {
		fmt.Fprintf(w, "config error:\t%s\n", st.ConfigError)
	}
	return w.Flush()
}

func runLogout(ctx context.Context, fs *flag.FlagSet, args []string) error {
	account := fs.String("account", "", "account label")
	keep := fs.Bool("keep-remote", false, "do not revoke the refresh token at the authorization server")
	forget := fs.Bool("forget-client", false, "also drop the client registration stored for the server's authorization server; the next login registers again")
	forgetIdP := fs.Bool("forget-idp", false, "also drop the sign-in at the identity provider of an enterprise session (its servers need the browser sign-in again)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	res, err := ask(ctx, func(c *ipc.Client) (agent.LogoutResult, error) {
		return c.Logout(ctx, agent.LogoutRequest{Server: pos[0], Account: *account, KeepRemote: *keep, ForgetClient: *forget, ForgetIdP: *forgetIdP})
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(res)
	}
	switch {
	case res.RevokeError == "no session": // --forget-client for a server without a session
		fmt.Fprintf(os.Stderr, "mcpkey: no session for %s\n", res.Server)
	case res.Revoked:
		fmt.Fprintf(os.Stderr, "mcpkey: logged out of %s; the refresh token was revoked at the authorization server\n", res.Server)
	default:
		fmt.Fprintf(os.Stderr, "mcpkey: logged out of %s (removed locally; not revoked: %s)\n", res.Server, res.RevokeError)
	}
	if res.ForgotIdP != "" {
		fmt.Fprintf(os.Stderr, "mcpkey: forgot the sign-in at the identity provider %s; the next login of its servers signs in through the browser\n", res.ForgotIdP)
	}
	if res.ForgotClient != "" {
		fmt.Fprintf(os.Stderr, "mcpkey: forgot the client registration with %s; the next login registers again\n", res.ForgotClient)
	} else if *forget {
		fmt.Fprintln(os.Stderr, "mcpkey: no client registration was stored for its authorization server")
	}
	return nil
}

func runLogin(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var scopes multiFlag
	fs.Var(&scopes, "scope", "scope to request (repeatable); adds to what the session has (step-up)")
	account := fs.String("account", "", "account label, to keep several sessions for one server")
	noBrowser := fs.Bool("no-browser", false, "do not open a browser: print the URL (and a device code when offered) and accept the pasted redirect URL on stdin")
	clientID := fs.String("client-id", "", "a pre-registered OAuth client id")
	secretFile := fs.String("client-secret-file", "", "file holding the pre-registered client's secret (never pass secrets in argv)")
	cimd := fs.String("client-metadata-url", "", "https URL of a Client ID Metadata Document to use as client id")
	grant := fs.String("grant", "", "sign in without a browser: client_credentials, jwt_bearer (workload identity) or enterprise")
	keyFile := fs.String("client-key-file", "", "PEM private key of a private_key_jwt client (--grant client_credentials)")
	keyAlg := fs.String("client-key-alg", "", "JWS algorithm of --client-key-file (default: from the key)")
	assertionFile := fs.String("assertion-file", "", "file holding the workload's token (--grant jwt_bearer); read again at every renewal")
	idp := fs.String("idp", "", "configured identity provider ([idps.NAME]) whose sign-in --grant enterprise exchanges")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	req := agent.LoginRequest{Server: pos[0], Account: *account, Scopes: scopes, NoBrowser: *noBrowser, ClientID: *clientID, ClientMetadataURL: *cimd}
	if req.Grant, err = agent.LoginGrant(*grant, *keyFile, *keyAlg, *assertionFile, *idp); err != nil {
		return err
	}
	if *secretFile != "" {
		if req.ClientSecret, err = agent.ReadSecretFile(*secretFile); err != nil {
			return err
		}
	}
	c := &ipc.Client{}
	defer c.Close()
	return withAgent(ctx, c, func() error { return login(ctx, c, req) })
}

// login runs a login through the agent, printing its progress on stderr.
func login(ctx context.Context, c *ipc.Client, req agent.LoginRequest) error {
	if req.NoBrowser {
		go pasteRedirects(ctx, c, os.Stdin)
	}
	info, err := c.Login(ctx, req, func(e agent.Event) {
		if e.Message != "" {
			fmt.Fprintf(os.Stderr, "mcpkey: %s\n", e.Message)
		}
		if e.URL != "" && (req.NoBrowser || e.ShowURL) {
			fmt.Fprintf(os.Stderr, "\n    %s\n\n", e.URL)
		}
	})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return errors.New("login cancelled")
		}
		return err
	}
	_ = info
	return nil
}

// pasteRedirects hands every line typed on r to the agent as a redirect URL.
func pasteRedirects(ctx context.Context, c *ipc.Client, r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() && ctx.Err() == nil {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := c.CompleteLogin(ctx, line); err != nil {
			fmt.Fprintf(os.Stderr, "mcpkey: %s\n", err)
		}
	}
	if err := sc.Err(); err != nil { // a line over 64 KiB is no redirect URL
		fmt.Fprintf(os.Stderr, "mcpkey: read pasted redirect URL: %v\n", err)
	}
}

// ---- probe ----

func runProbe(ctx context.Context, fs *flag.FlagSet, args []string) error {
	account := fs.String("account", "", "account label")
	asJSON := fs.Bool("json", false, "print JSON")
	noLogin := fs.Bool("no-login", false, "fail instead of starting a login")
	call := fs.String("call", "", "also call this tool (with empty arguments) and print its result")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	c := &ipc.Client{}
	defer c.Close()
	doLogin := func(ctx context.Context, scopes []string) error {
		if *noLogin {
			return errors.New("login disabled by --no-login")
		}
		return login(ctx, c, agent.LoginRequest{Server: pos[0], Account: *account, Scopes: scopes})
	}
	var res *launch.ProbeResult
	err = withAgent(ctx, c, func() (err error) {
		res, err = launch.Probe(ctx, c, launch.ProbeOptions{Server: pos[0], Account: *account, Login: doLogin, Call: *call, Version: buildVersion()})
		return err
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(res)
	}
	fmt.Printf("server:   %s\n", res.Server)
	fmt.Printf("name:     %s\n", res.Name)
	fmt.Printf("version:  %s\n", res.Version)
	fmt.Printf("protocol: %s\n", res.ProtocolVersion)
	fmt.Printf("tools:    %d\n", len(res.Tools))
	for _, t := range res.Tools {
		fmt.Printf("  %s\n", t)
	}
	if res.Called != "" {
		fmt.Printf("called:   %s\n%s\n", res.Called, res.CallResult)
	}
	return nil
}

// ---- terminal ----

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func promptPassphrase(prompt string) (string, error) {
	fmt.Fprint(os.Stderr, "mcpkey: "+prompt+": ")
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	return string(b), nil
}

// ---- help ----

func usage() string {
	var b strings.Builder
	b.WriteString(`mcpkey: an ssh-agent for MCP OAuth

One agent per user holds your MCP servers' OAuth sessions in the OS keyring,
signs you in through your browser, is the only process that refreshes tokens,
and hands access tokens to local programs over a Unix socket ($MCPKEY_SOCK).

usage: mcpkey <command> [flags] [args]
`)
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	listed := map[string]bool{}
	for _, g := range commandGroups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, name := range g.names {
			if c := lookup(name); c != nil {
				listed[c.name] = true
				fmt.Fprintf(w, "  %s\t%s\n", nameWithAliases(c), c.short)
			}
		}
	}
	first := true
	for _, c := range commands {
		if !listed[c.name] {
			if first {
				fmt.Fprintf(w, "\nmore:\n")
				first = false
			}
			fmt.Fprintf(w, "  %s\t%s\n", nameWithAliases(c), c.short)
		}
	}
	w.Flush()
	b.WriteString(`
<server> is a server name from the config file or a URL.
Run 'mcpkey help <command>' for a command's flags and examples.
` + envHelp + exitHelp)
	return b.String()
}

// commandGroups orders `mcpkey help`; a command not named here is listed
// last, under "more".
var commandGroups = []struct {
	title string
	names []string
}{
	{"sessions", []string{"login", "token", "list", "status", "logout", "probe"}},
	{"MCP hosts", []string{"bridge", "exec", "proxy", "secret", "config"}},
	{"access control", []string{"approvals", "approve", "deny", "lock", "unlock", "socket", "log"}},
	{"running the agent", []string{"agent", "tray", "install", "uninstall"}},
	{"other", []string{"completion", "man", "version"}},
}

func nameWithAliases(c *command) string {
	if c.aliases != "" {
		return c.name + ", " + c.aliases
	}
	return c.name
}

func helpFor(c *command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: mcpkey %s %s\n\n%s\n", c.name, c.args, c.short)
	if c.long != "" {
		b.WriteString("\n" + c.long)
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// Register the flags by parsing --help: each run func defines its flags
	// before parsing, so this lists exactly what the command accepts.
	_ = c.run(context.Background(), fs, []string{"--help"})
	var flags strings.Builder
	fs.SetOutput(&flags)
	fs.PrintDefaults()
	if flags.Len() > 0 {
		b.WriteString("\nflags:\n" + flags.String())
	}
	return b.String()
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

const loginHelp = `Asks the agent to sign you in to an MCP server: it discovers the server's
authorization server, registers a client if needed, and opens your browser
(PKCE, a loopback redirect). One login runs per server and account; a second
'mcpkey login' for the same joins the first. Ctrl-C cancels.

The browser is your $BROWSER (else the desktop's default), opened on your
$DISPLAY / $WAYLAND_DISPLAY, even when the agent was started elsewhere (never
as root). A sign-in nobody finishes ends after 10 minutes.

With --no-browser (SSH, headless) the URL is printed; sign in anywhere and paste
the address the browser ends on. When the authorization server offers the
device authorization grant, a code to type in is shown instead.

Without a browser (--grant; or grant in the server's config, where the agent
also starts the session on the first token request): client_credentials (the
client's secret in --client-secret-file, or its private_key_jwt key in
--client-key-file), jwt_bearer (workload identity: the workload's token in
--assertion-file, read again at every renewal) and enterprise (the sign-in at
a configured identity provider, --idp NAME, exchanged for this server). These
sessions have no refresh token: the agent runs the grant again near expiry.

examples:
  mcpkey login https://mcp.example.com/mcp
  mcpkey login github --scope repo:read
  mcpkey login work --account alice@example.com --no-browser
  mcpkey login https://mcp.example.com/mcp --client-id abc --client-secret-file ~/.abc.secret
  mcpkey login https://mcp.example.com/mcp --grant client_credentials --client-id bot --client-key-file ~/.bot.pem
  mcpkey login https://mcp.example.com/mcp --grant jwt_bearer --client-id ci --assertion-file /var/run/secrets/tokens/mcp
`

const tokenHelp = `Prints only the access token on stdout (like 'gh auth token'), refreshing it
first when it is about to expire (one refresh at most per call). A token the
server gave no lifetime for is printed until a server rejects it; --min-ttl
then refreshes it first. Exit code 3 means a login is needed.

examples:
  curl -H "Authorization: Bearer $(mcpkey token github)" https://api.example.com/mcp
  mcpkey token https://mcp.example.com/mcp --json
`

const listHelp = `Lists the sessions the agent holds: server, account, state, expiry, scopes.
EXPIRES says "no expiry given" when the authorization server sent no token
lifetime. Never prints tokens. A stored session that cannot be read (a corrupt
item) is listed as broken, with the item named; ` + "`mcpkey logout`" + ` removes it.

examples:
  mcpkey ls
  mcpkey list --json
`

const statusHelp = `Shows the agent: pid, version, socket, credential store, locked or not, and
how many sessions it holds or need a login.

examples:
  mcpkey status
  mcpkey status --json
`

const logoutHelp = `Removes a session from the agent and the keyring and, when the authorization
server offers RFC 7009 revocation, revokes its refresh token there. The session
is removed first; the agent then revokes for up to 10 s, even if you press
Ctrl-C. A broken session whose server cannot be read is named by the id that
` + "`mcpkey ls`" + ` shows.

--forget-client also drops the client registration mcpkey stored for the
server's authorization server (dynamic registration or client metadata URL),
so the next login registers again: for a server that forgot it (after a
restart) or to start over. It also works for a server without a session (a
login that never finished): discovery finds its authorization server. mcpkey
drops a registration by itself when the server answers invalid_client. A
pre-registered client (--client-id) is never stored there.

examples:
  mcpkey logout github
  mcpkey logout https://mcp.example.com/mcp --keep-remote
  mcpkey logout https://mcp.example.com/mcp --forget-client
`

const probeHelp = `Checks a server end to end: connects over Streamable HTTP with a token from the
agent (signing in if needed, refreshing on 401, stepping up on 403
insufficient_scope), initializes, lists the tools, and prints the server's name,
version and tool names. A server that rejects freshly issued tokens gets one
extra sign-in, then the error says its audience may not match (see
resource_as_audience in the README).

examples:
  mcpkey probe https://mcp.example.com/mcp
  mcpkey probe github --json
  mcpkey probe https://mcp.example.com/mcp --call whoami
`

// ---- install, completion, man ----

func runInstall(ctx context.Context, fs *flag.FlagSet, args []string) error {
	tray := fs.Bool("tray", false, "also start the tray at login (XDG autostart, LaunchAgent)")
	dry := fs.Bool("dry-run", false, "print what would be done, change nothing")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	uid := os.Getuid()
	_, err := packaging.Install(packaging.InstallOptions{Tray: *tray, DryRun: *dry, Out: os.Stdout, UID: &uid})
	return err
}

func runUninstall(ctx context.Context, fs *flag.FlagSet, args []string) error {
	dry := fs.Bool("dry-run", false, "print what would be done, change nothing")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	uid := os.Getuid()
	_, err := packaging.Uninstall(packaging.InstallOptions{DryRun: *dry, Out: os.Stdout, UID: &uid})
	return err
}

func runCompletion(ctx context.Context, fs *flag.FlagSet, args []string) error {
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	out, err := packaging.Completion(pos[0], commandDefs())
	if err != nil {
		return usageError{err.Error()}
	}
	_, err = fmt.Print(out)
	return err
}

func runMan(ctx context.Context, fs *flag.FlagSet, args []string) error {
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	_, err := fmt.Print(packaging.ManPage(commandDefs(), buildVersion()))
	return err
}

// commandDefs describes the command table for completions and the man page:
// the same definitions --help prints, flags included.
func commandDefs() []packaging.Command {
	var out []packaging.Command
	for _, c := range commands {
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		_ = c.run(context.Background(), fs, []string{"--help"}) // defines the flags, does nothing else
		flags := packaging.FlagsOf(fs)
		for i := range flags {
			if _, ok := fs.Lookup(flags[i].Name).Value.(*multiFlag); ok {
				flags[i].Repeatable = true
			}
		}
		out = append(out, packaging.Command{Name: c.name, Aliases: c.aliases, Args: c.args, Short: c.short, Long: c.long, Flags: flags})
	}
	return out
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

const completionHelp = `Prints a completion script for bash, zsh or fish.

examples:
  mcpkey completion bash > ~/.local/share/bash-completion/completions/mcpkey
  mcpkey completion zsh > "${fpath[1]}/_mcpkey"
  mcpkey completion fish > ~/.config/fish/completions/mcpkey.fish
`

// ---- launchers: bridge, exec, proxy, secret, config snippet ----

func runBridge(ctx context.Context, fs *flag.FlagSet, args []string) error {
	account := fs.String("account", "", "account label, when a server has several sessions")
	wait := fs.Duration("login-wait", 0, "how long to wait for a sign-in (default: the config's login_wait, 5m)")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	c := &ipc.Client{}
	defer c.Close()
	err = withAgent(ctx, c, func() error { _, err := c.ResolveServer(ctx, pos[0]); return err })
	if err != nil {
		return err
	}
	return launch.Bridge(ctx, launch.BridgeConfig{Client: c, Server: pos[0], Account: *account, LoginWait: *wait,
		In: os.Stdin, Out: os.Stdout, Status: os.Stderr})
}

func runExec(ctx context.Context, fs *flag.FlagSet, args []string) error {
	account := fs.String("account", "", "account label for the server's token")
	i := slices.Index(args, "--")
	before, argv := args, []string(nil)
	if i >= 0 {
		before, argv = args[:i], args[i+1:]
	}
	pos, err := parse(fs, before, 1) // <server> is optional
	if errors.Is(err, errMissingServer) {
		pos, err = parse(fs, before, 0)
	}
	if err != nil {
		return err
	}
	if len(argv) == 0 {
		return usagef("missing -- <command>")
	}
	cfg := launch.ExecConfig{Account: *account, Environ: os.Environ()}
	if len(pos) == 1 {
		cfg.Server = pos[0]
	}
	c := &ipc.Client{}
	defer c.Close()
	cfg.Client = c
	var env []string
	if err := withAgent(ctx, c, func() (err error) { env, err = launch.ExecEnv(ctx, cfg); return err }); err != nil {
		return err
	}
	c.Close()
	code, err := launch.Exec(ctx, argv, env) // on Unix, returns only on failure
	if err != nil {
		return err
	}
	os.Exit(code)
	return nil
}

func runProxy(ctx context.Context, fs *flag.FlagSet, args []string) error {
	listen := fs.String("listen", "127.0.0.1:7391", "loopback address to listen on")
	secretFile := fs.String("secret-file", "", "write the per-launch secret to this file (0600) instead of printing it")
	socket := fs.String("socket", "", "also listen on this Unix socket (peer uid checked, no secret)")
	var origins multiFlag
	fs.Var(&origins, "allow-origin", "an Origin allowed to call the proxy (repeatable); others get 403")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*listen)
	if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
		return usagef("--listen %s: must be a loopback address such as 127.0.0.1:PORT", *listen)
	}
	c := &ipc.Client{}
	defer c.Close()
	if err := withAgent(ctx, c, func() error { _, err := c.Hello(ctx); return err }); err != nil {
		return err
	}
	secret := launch.NewSecret()
	p, err := launch.NewProxy(launch.ProxyConfig{Client: c, Secret: secret, AllowedOrigins: origins, Status: os.Stderr})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	info := map[string]string{"url": base}
	errc := make(chan error, 2)
	if *socket != "" {
		uln, err := ipc.Listen(*socket)
		if err != nil {
			ln.Close()
			return err
		}
		info["socket"] = *socket
		go func() { errc <- p.Serve(ctx, uln) }()
	}
	if *secretFile != "" {
		// Created exclusively, 0600; a file someone else made is refused.
		if err := safefile.WriteFile(*secretFile, []byte(secret+"\n"), 0); err != nil {
			ln.Close()
			return fmt.Errorf("write secret file: %w", err)
		}
		info["secret_file"] = *secretFile
		fmt.Fprintf(os.Stderr, "mcpkey proxy: the secret is in %s\n", *secretFile)
	} else {
		fmt.Fprintf(os.Stderr, "mcpkey proxy: secret (send as Authorization: Bearer; shown once): %s\n", secret)
	}
	fmt.Fprintf(os.Stderr, "mcpkey proxy: serving %s/<server>/mcp for every configured server\n", base)
	if err := printJSONLine(info); err != nil {
		return err
	}
	go func() { errc <- p.Serve(ctx, ln) }()
	return <-errc
}

func printJSONLine(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(b))
	return err
}

func runSecret(ctx context.Context, fs *flag.FlagSet, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		return usagef("missing subcommand: set, get, list or rm")
	}
	sub, rest := args[0], args[1:]
	want := 1
	if sub == "list" || sub == "ls" {
		want = 0
	}
	pos, err := parse(fs, rest, want)
	if err != nil {
		return err
	}
	c := &ipc.Client{}
	defer c.Close()
	switch sub {
	case "set":
		value, err := readSecretValue(pos[0])
		if err != nil {
			return err
		}
		if err := withAgent(ctx, c, func() error { return c.SetSecret(ctx, pos[0], value) }); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "mcpkey: stored secret %s; reference it as \"secret:%s\" in the config\n", pos[0], pos[0])
		return nil
	case "get":
		var v []byte
		if err := withAgent(ctx, c, func() (err error) { v, err = c.Secret(ctx, pos[0]); return err }); err != nil {
			return err
		}
		_, err = os.Stdout.Write(append(v, '\n'))
		return err
	case "list", "ls":
		var names []string
		if err := withAgent(ctx, c, func() (err error) { names, err = c.Secrets(ctx); return err }); err != nil {
			return err
		}
		for _, n := range names {
			fmt.Println(n)
		}
		return nil
	case "rm", "delete":
		if err := withAgent(ctx, c, func() error { return c.DeleteSecret(ctx, pos[0]) }); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "mcpkey: deleted secret %s\n", pos[0])
		return nil
	}
	return usagef("unknown subcommand %q: set, get, list or rm", sub)
}

// readSecretValue reads a secret from a no-echo prompt when stdin is a
// terminal, else all of stdin (one trailing newline dropped). Never argv.
func readSecretValue(name string) ([]byte, error) {
	if isTerminal(os.Stdin) {
		v, err := promptPassphrase("value for " + name)
		return []byte(v), err
	}
	v, err := io.ReadAll(io.LimitReader(os.Stdin, agent.MaxSecretSize+2))
	if err != nil {
		return nil, fmt.Errorf("read secret from stdin: %w", err)
	}
	v = []byte(strings.TrimSuffix(strings.TrimSuffix(string(v), "\n"), "\r"))
	if len(v) == 0 {
		return nil, errors.New("empty secret on stdin")
	}
	return v, nil
}

func runConfig(ctx context.Context, fs *flag.FlagSet, args []string) error {
	proxyURL := fs.String("proxy", "", "mcpkey proxy's URL (http://127.0.0.1:PORT): hosts that speak HTTP use it instead of the bridge")
	asJSON := fs.Bool("json", false, "print the snippet and where it goes as JSON")
	name := fs.String("name", "", "the name the host lists the server under (letters, digits, - and _; default derived from <server>)")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		return usagef("missing subcommand: snippet")
	}
	if args[0] != "snippet" {
		return usagef("unknown subcommand %q: snippet", args[0])
	}
	pos, err := parse(fs, args[1:], 2)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locate the mcpkey binary: %w", err)
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	// Hosts strip the environment: name the socket when they would miss it.
	sock, err := ipc.HostSocketEnv()
	if err != nil {
		return err
	}
	s, err := launch.Snippet(pos[0], pos[1], launch.SnippetOptions{Exe: exe, ProxyURL: *proxyURL, Name: *name, Socket: sock})
	if err != nil {
		return usageError{err.Error()}
	}
	if *asJSON {
		return printJSON(s)
	}
	fmt.Fprintf(os.Stderr, "mcpkey: %s via mcpkey %s; %s:\n", s.Host, s.Via, s.Where)
	if sock != "" && s.Via == "bridge" {
		fmt.Fprintf(os.Stderr, "mcpkey: it sets MCPKEY_SOCK=%s: the host starts the bridge without your XDG_RUNTIME_DIR and MCPKEY_SOCK, and would not find the agent there\n", sock)
	}
	_, err = fmt.Print(strings.TrimRight(s.Text, "\n") + "\n")
	return err
}

const bridgeHelp = `A stdio MCP server for hosts that launch only stdio servers (Claude Desktop and
others): it relays every message, uninterpreted, between the host and the remote
server over Streamable HTTP (or the older HTTP+SSE transport), with a token from
the agent on every request. On a 401 the agent refreshes (once for all bridges;
a server that rejects freshly issued tokens gets one extra sign-in, then an
error naming the audience); when a sign-in is needed one browser tab opens,
initialize waits for it (--login-wait), and other requests are answered with an
error saying what to do until it is done. Servers with [servers.NAME.headers] in
the config get those headers (API keys from 'mcpkey secret') instead of OAuth.

The bridge never writes a token to disk, argv, its environment or its logs;
its stderr lines ("mcpkey bridge: ...") show in the host's MCP log. It exits
when the host closes stdin.

examples:
  mcpkey bridge github
  mcpkey bridge https://mcp.example.com/mcp --login-wait 2m
  mcpkey config snippet claude-desktop github
`

const execHelp = `Runs a command (a stdio MCP server, a script) with secrets in its environment
only, as 'op run' does. The server's [servers.NAME.env] table maps variables to
"token" (its access token) or "secret:NAME" (a stored secret), and variables in
your environment may hold references:

  VAR=mcpkey://NAME          the access token of the configured server NAME
  VAR=mcpkey://secret/NAME   the stored secret NAME

If any secret is missing nothing is started and the exit code is 1 (3 when a
sign-in is needed). On Unix the command replaces mcpkey (exec); on Windows
mcpkey waits and returns its exit code.

A token in an environment is not refreshed while the command runs: it stops
working when it expires (often within an hour). For HTTP servers use
'mcpkey bridge' or 'mcpkey proxy', which fetch a fresh token per request.

examples:
  mcpkey exec github -- npx -y @modelcontextprotocol/server-github
  GITHUB_TOKEN=mcpkey://secret/gh-pat mcpkey exec -- ./server
  mcpkey exec work --account alice -- env
`

const proxyHelp = `Serves http://127.0.0.1:PORT/<server>/mcp for every configured server: a local
Streamable HTTP endpoint that forwards to the server with the agent's token
added, for hosts that speak HTTP MCP but must never hold a token. Clients
present the per-launch secret as "Authorization: Bearer SECRET" (printed once
on stderr, or written to --secret-file with mode 0600); requests without it get
401, with a foreign Origin 403, with a Host other than the listener 421. With
--socket, clients of the Unix socket are checked by user id instead.

The first stdout line is JSON: {"url": "http://127.0.0.1:PORT", ...}.

examples:
  mcpkey proxy
  mcpkey proxy --listen 127.0.0.1:9000 --secret-file ~/.config/mcpkey/proxy.secret
  mcpkey config snippet vscode github --proxy http://127.0.0.1:7391
`

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

const configHelp = `'mcpkey config snippet <host> <server>' prints the block that makes an MCP host
use <server> through mcpkey, for claude-desktop, claude-code, cursor and
vscode. It uses the bridge (the host launches this mcpkey binary over stdio),
or with --proxy the proxy's HTTP endpoint where the host speaks HTTP (Claude
Desktop's config does not). Where it goes is printed on stderr.

The host lists the server under a name made of letters, digits, - and _
(hosts refuse others): --name, else derived from <server> (a URL gives its host
and path: https://mcp.example.com/mcp is mcp-example-com-mcp). Hosts launch
stdio servers with a stripped environment (HOME, PATH, USER and a few more; no
XDG_RUNTIME_DIR or MCPKEY_SOCK): when the agent's socket is not where such an
environment finds it, the snippet sets MCPKEY_SOCK for the bridge.

examples:
  mcpkey config snippet claude-desktop github
  mcpkey config snippet claude-code github
  mcpkey config snippet claude-code https://mcp.example.com/mcp --name example
  mcpkey config snippet vscode github --proxy http://127.0.0.1:7391
`

package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/config"
	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/packaging"
)

// Options configures Run: what `mcpkey agent`'s flags say. Empty fields take
// the config file's value, then the default.
type Options struct {
	// Socket is the agent's socket path. Required (the command resolves
	// $MCPKEY_SOCK and the per-user default); socket activation
	// (systemd's mcpkey.socket) overrides it.
	Socket string
	// ConfigPath is the config file. Required.
	ConfigPath string
	// Backend is the credential store (auto, secret-service, kwallet,
	// keychain, wincred, keyctl, pass, file, memory); "" means
	// $MCPKEY_BACKEND, then the config's, then auto.
	Backend string
	// LogLevel, when set, overrides the config's log_level.
	LogLevel *slog.Level
	// PassphraseFile holds the file backend's passphrase.
	PassphraseFile string
	// KeyringTimeout bounds every keyring call (0: the config's, else 10 s).
	KeyringTimeout time.Duration
	// WebSocket also serves the loopback WebSocket; WSListen is its address
	// (implies WebSocket; "" means the config's ws_listen, else
	// config.DefaultWSListen).
	WebSocket bool
	WSListen  string
	// Confirm asks before handing a token to a program not on the allow list.
	Confirm bool
	// AuditLog is the audit log's path, or "off"; "" means
	// $MCPKEY_AUDIT_LOG, else agent.DefaultAuditPath.
	AuditLog string
	// Version is reported by status.
	Version string
	// Tray, when set, runs the tray on the calling goroutine (desktop
	// toolkits want the main thread) as a client of the agent on socket,
	// while the agent serves in goroutines; Quit in the tray (Tray
	// returning nil) stops both, and a Tray error leaves the agent running
	// alone. When another agent of the user's already runs, Run starts only
	// the tray, for that agent. This package never imports the tray: main
	// passes it.
	// It gets the agent's logger and config path.
	Tray func(ctx context.Context, socket string, log *slog.Logger, configPath string) error
	// Stderr receives the logs; nil means os.Stderr.
	Stderr io.Writer
	// Passphrase prompts for the file backend's passphrase on the terminal
	// when neither PassphraseFile nor the environment has it; nil means no
	// prompt.
	Passphrase func(prompt string) (string, error)
	// Foreground, when set, logs that the agent runs in a terminal and
	// `mcpkey install` sets it up as a service.
	Foreground bool
}

// Run runs the agent until ctx ends: it loads the config, opens the
// credential store (re-executing itself, same pid, when the Secret Service
// needs 99designs/keyring's init on D-Bus), takes the socket (or the one
// systemd hands over) and the per-user lock, publishes the loopback
// WebSocket, serves the socket, restricted sockets and the WebSocket,
// follows config changes (file watch and SIGHUP) and, with Options.Tray,
// shows the tray.
func Run(ctx context.Context, o Options) error {
	settings, err := agent.LoadSettings(o.ConfigPath)
	if err != nil {
		return err
	}
	lv := settings.LogLevel
	if o.LogLevel != nil {
		lv = *o.LogLevel
	}
	stderr := o.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	be := cmp.Or(o.Backend, os.Getenv("MCPKEY_BACKEND"), settings.Backend, "auto")

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

	path := o.Socket
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
	if o.Tray != nil && errors.As(err, &running) && running.Path != "" {
		// Desktop autostart runs "agent --tray" even where a service
		// already runs the agent: then the tray alone is wanted.
		log.Info("an agent is already running; starting only the tray", "socket", running.Path)
		return o.Tray(ctx, running.Path, log, o.ConfigPath)
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
	wsAddr := cmp.Or(o.WSListen, settings.WSListen)
	if wsAddr == "" && o.WebSocket {
		wsAddr = config.DefaultWSListen
	}
	var wsLn net.Listener
	var wsInfo ipc.WebSocketInfo
	if wsAddr != "" {
		if wsLn, wsInfo, err = ipc.PublishWebSocket(wsAddr, ipc.WebSocketInfoPath(path)); err != nil {
			return err
		}
		defer wsLn.Close() // removes agent.ws.json if still ours
	}

	st, err := openStore(ctx, storeOptions{
		backend: be, passFile: cmp.Or(o.PassphraseFile, settings.PassphraseFile), envPass: envPass,
		timeout: cmp.Or(o.KeyringTimeout, settings.KeyringTimeout), prompt: o.Passphrase, log: log,
	})
	if err != nil {
		return err
	}
	a, err := agent.New(ctx, agent.Config{
		Store: st, Settings: settings, ConfigPath: o.ConfigPath, Logger: log,
		Version: o.Version, Socket: path, WebSocketURL: wsInfo.URL,
		Confirm: o.Confirm, Audit: agent.AuditOptions{Path: AuditPath(o.AuditLog)},
	})
	if err != nil {
		return err
	}
	defer a.Close()

	stopReload := followConfig(ctx, a, o.ConfigPath, settings, log)
	defer stopReload()
	if o.Foreground {
		log.Warn("the agent runs in the foreground here; `mcpkey install` sets it up as a service")
	}
	log.Info("listening", "socket", path, "backend", st.Backend(), "pid", os.Getpid())
	srv := NewServer(a, ServerOptions{Logger: log})
	serveRestricted(ctx, srv, a, path, log)
	if wsLn != nil {
		stopWS, err := serveWebSocket(ctx, srv, wsLn, wsInfo, settings.WSAllowedOrigins, log)
		if err != nil {
			return err
		}
		defer stopWS()
	}
	if o.Tray != nil {
		err = serveWithTray(ctx, srv, ln, func(ctx context.Context) error { return o.Tray(ctx, path, log, o.ConfigPath) }, stderr)
	} else {
		err = srv.Serve(ctx, ln)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("agent stopped")
	return nil
}

// followConfig applies config file changes (watched, and on SIGHUP) to a
// until stop.
func followConfig(ctx context.Context, a *agent.Agent, cfgPath string, current *agent.Settings, log *slog.Logger) (stop func()) {
	w, err := agent.WatchSettings(ctx, cfgPath, agent.WatchOptions{Current: current, Logger: log}, a.ApplySettings, a.ConfigRejected)
	if err != nil {
		// Not fatal: SIGHUP still reloads.
		log.Warn("not watching the config file", "err", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
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
	return func() { signal.Stop(hup) }
}

// serveWebSocket serves srv's protocol on the loopback WebSocket as well,
// until stop, which waits for its connections to end.
func serveWebSocket(ctx context.Context, srv *Server, ln net.Listener, info ipc.WebSocketInfo, origins []string, log *slog.Logger) (stop func(), err error) {
	ws, err := NewWebSocketServer(srv, WebSocketOptions{Secret: info.Secret, AllowedOrigins: origins, Logger: log})
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
// calling, goroutine. The tray is still a client: it reaches the agent over
// the socket, like any other program. Quit in the tray stops both; without
// a tray host the agent carries on alone.
func serveWithTray(ctx context.Context, srv *Server, ln net.Listener, runTray func(context.Context) error, stderr io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	if err := runTray(ctx); err != nil {
		fmt.Fprintf(stderr, "mcpkey: %v; the agent carries on without it\n", err)
		return <-served
	}
	cancel() // Quit
	return <-served
}

// serveRestricted lets srv serve restricted sockets next to the agent's,
// opens the config's [[restricted_socket]] ones, and follows config reloads.
func serveRestricted(ctx context.Context, srv *Server, a *agent.Agent, socketPath string, log *slog.Logger) {
	srv.EnableRestricted(ctx, filepath.Dir(socketPath))
	sync := func() {
		if err := srv.SyncRestricted(a.CurrentSettings().RestrictedSockets); err != nil {
			log.Warn("restricted socket not opened", "err", err)
		}
	}
	events := a.Subscribe(ctx) // before the first sync: no reload is missed
	sync()
	go func() {
		for {
			ev, ok := <-events
			if !ok {
				if ctx.Err() != nil {
					return
				}
				events = a.Subscribe(ctx) // dropped as a slow subscriber
				sync()
				continue
			}
			if ev.Kind == agent.EventConfigReloaded && ev.Error == "" {
				sync()
			}
		}
	}()
}

// storeOptions says which credential store openStore opens.
type storeOptions struct {
	backend, passFile string
	// envPass is the passphrase taken from the environment or a
	// descriptor (store.TakePassphrase).
	envPass string
	timeout time.Duration
	prompt  func(prompt string) (string, error)
	log     *slog.Logger
}

// openStore opens the credential store. The file backend's passphrase
// comes from the passphrase file, else the environment, else a terminal
// prompt; never from argv.
func openStore(ctx context.Context, o storeOptions) (store.Store, error) {
	if o.backend == "memory" {
		return store.NewMemory(), nil
	}
	cfg := store.KeyringConfig{Backend: o.backend, Timeout: o.timeout, Logger: o.log}
	if o.backend == "file" {
		cfg.Passphrase = func(prompt string) (string, error) {
			if o.passFile != "" {
				return agent.ReadSecretFile(o.passFile)
			}
			if o.envPass != "" {
				return o.envPass, nil
			}
			if o.prompt != nil {
				return o.prompt(prompt)
			}
			return "", errors.New("the file backend needs a passphrase: set MCPKEY_FILE_PASSPHRASE, pass --passphrase-file, or run the agent in a terminal")
		}
	}
	return store.OpenContext(ctx, cfg)
}

// AuditPath is the agent's audit log: flagValue, then $MCPKEY_AUDIT_LOG,
// then agent.DefaultAuditPath; "off" means none ("").
func AuditPath(flagValue string) string {
	p := cmp.Or(flagValue, DefaultAuditPath())
	if p == "off" {
		return ""
	}
	return p
}

// DefaultAuditPath is $MCPKEY_AUDIT_LOG, else agent.DefaultAuditPath.
func DefaultAuditPath() string {
	if p := os.Getenv("MCPKEY_AUDIT_LOG"); p != "" {
		return p
	}
	p, err := agent.DefaultAuditPath()
	if err != nil {
		return "audit.jsonl"
	}
	return p
}

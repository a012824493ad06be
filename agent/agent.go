package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpkey/mcpkey/agent/browser"
	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/policy"
	"github.com/mcpkey/mcpkey/agent/store"
)

// Version is the agent's version, stamped at build time by main.
const defaultVersion = "dev"

// Config configures an Agent. The zero value of every field but Store is
// usable; New documents the default each nil field gets. The Agent owns the
// Config after New: do not change it afterwards.
type Config struct {
	// Store holds the credentials. Required.
	Store store.Store
	// Settings is the parsed config file; nil means no config file (every
	// server named by URL, all defaults). Replace it later with
	// (*Agent).ApplySettings.
	Settings *Settings
	// ConfigPath is shown in status; informational.
	ConfigPath string
	// HTTPClient returns the hardened client for one server's OAuth
	// traffic. nil means oauth.NewHTTPClient with the server's
	// allow_private_network setting.
	HTTPClient func(allowPrivateNetwork bool) *http.Client
	// OpenURL opens the authorization URL in the user's browser. nil means
	// browser.Open.
	OpenURL func(ctx context.Context, url string) error
	// Executable is the mcpkey executable whose tray may answer approvals
	// (see approverTerminal); "" means the agent's own.
	Executable string
	// Logger receives the agent's logs; nil discards them. Logs never carry
	// token material.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Version is reported by status; "" means "dev".
	Version string
	// Socket and WebSocketURL are reported by status; informational.
	Socket       string
	WebSocketURL string
	// LoginTimeout bounds one login flow (the user's time in the browser
	// included). Zero means 10 minutes.
	LoginTimeout time.Duration

	// Confirm turns on approval for every server, whatever the config says
	// (`mcpkey agent --confirm`).
	Confirm bool
	// Audit configures the audit log; an empty Audit.Path means none
	// (`mcpkey agent` uses DefaultAuditPath).
	Audit AuditOptions
	// DBusSessionAddress and DBusSystemAddress are the buses watched for
	// the screen lock (lock_on_screen_lock); "" means the default bus,
	// "off" means none.
	DBusSessionAddress string
	DBusSystemAddress  string
}

// Agent is the credential agent: the only holder of refresh tokens and the
// only process that refreshes them. Its exported methods are the API the ipc
// server exposes; all are safe for concurrent use.
type Agent struct {
	cfg        Config
	grantFails grantFailures // grants.go
	log        *slog.Logger
	now        func() time.Time
	started    time.Time
	events     *hub

	// mu guards settings, sessions and logins. It is never held across
	// I/O: per-session work takes the session's own lock.
	mu       sync.RWMutex
	settings *Settings
	// configErr is why the last config change was not applied ("" when it
	// was); status shows it.
	configErr string
	sessions  map[sessionKey]*session
	logins    map[sessionKey]*loginFlight
	asked     announced // login.needed announcements, per window (token.go)

	names       resolver      // server names and URLs to targets (resolve.go)
	regs        registrations // stored client registrations (client.go)
	http        outbound      // HTTP clients and the memory they leave (outbound.go)
	noticeShown atomic.Bool   // the store's notice reached a login's caller
	marginCap   marginCap     // refresh_margin, read by every session
	authz       authorizer    // a browser sign-in's registration, browser and callback (login.go)
	idps        idpSignIns    // sign-ins at identity providers (idp.go)
	// pending are the stored sessions not read yet, by id; broken those
	// that cannot be read; loaded is closed when the background loader is
	// through (loading.go).
	pending map[string]*pendingLoad
	broken  map[string]*brokenSession
	loaded  chan struct{}

	// bg is the agent's own context for background work (proactive
	// refresh, logins that outlive the first caller); cancelled by Close.
	bg     context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   wakeup // nudges the refresh scheduler (token.go)

	// pol is the access control: lock, approvals, deny rules, audit
	// (package policy; access.go is its facade).
	pol *policy.Policy
	// dpop is the DPoP nonce and refusal memory (dpop.go).
	dpop dpopState
	// refresher renews one session's tokens (token.go).
	refresher refresher
}

// New returns an agent over cfg.Store. It lists the stored sessions and
// reads them into memory in the background (loading.go), so it returns
// before any session is read; once read, token.get never touches the
// keyring on the hot path.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Store == nil {
		return nil, errors.New("agent: Config.Store is required")
	}
	if cfg.Settings == nil {
		cfg.Settings = &Settings{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Version == "" {
		cfg.Version = defaultVersion
	}
	if cfg.OpenURL == nil {
		cfg.OpenURL = browser.Open
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = func(allowPrivate bool) *http.Client {
			return oauth.NewHTTPClient(oauth.HTTPOptions{AllowPrivateNetwork: allowPrivate})
		}
	}
	if cfg.LoginTimeout == 0 {
		cfg.LoginTimeout = 10 * time.Minute
	}
	bg, cancel := context.WithCancel(context.Background())
	a := &Agent{
		cfg:      cfg,
		log:      cfg.Logger,
		now:      cfg.Now,
		started:  cfg.Now(),
		events:   newHub(cfg.Now),
		settings: cfg.Settings,
		sessions: make(map[sessionKey]*session),
		logins:   make(map[sessionKey]*loginFlight),
		bg:       bg,
		cancel:   cancel,
		wake:     make(wakeup, 1),
		http:     outbound{make: cfg.HTTPClient},
	}
	a.names.settings = a.CurrentSettings
	a.authz = authorizer{store: cfg.Store, now: cfg.Now, openURL: cfg.OpenURL, http: &a.http, names: &a.names, regs: &a.regs, dpop: &a.dpop}
	a.idps = idpSignIns{store: cfg.Store, log: cfg.Logger, settings: a.CurrentSettings, openURL: cfg.OpenURL, flows: &a.authz.flows}
	a.regs = registrations{st: cfg.Store, log: cfg.Logger, bg: bg}
	a.refresher = refresher{store: cfg.Store, log: cfg.Logger, now: cfg.Now, names: &a.names, regs: &a.regs, http: &a.http,
		dpop: &a.dpop, idps: &a.idps, publish: a.events.publish,
		audit: func(r AuditRecord) { a.pol.Audit(a.bg, r) }}
	if err := store.EnsureSchema(ctx, cfg.Store); err != nil {
		cancel()
		return nil, fmt.Errorf("credential store: %w", storeErr(err))
	}
	a.marginCap.Store(int64(cfg.Settings.RefreshMargin))
	n, err := a.beginLoad(ctx)
	if err != nil {
		cancel()
		a.wg.Wait()
		return nil, fmt.Errorf("list sessions: %w", storeErr(err))
	}
	a.pol, err = policy.New(policy.Options{
		Settings: a.CurrentSettings,
		Resolve: func(ref string) (string, error) {
			t, err := a.names.resolve(ref)
			return t.url, err
		},
		Confirm: cfg.Confirm, Audit: cfg.Audit, Executable: cfg.Executable,
		DBusSessionAddress: cfg.DBusSessionAddress, DBusSystemAddress: cfg.DBusSystemAddress,
		Logger: a.log, Now: a.now, Publish: a.events.publish, OnLock: a.dropAll,
	})
	if err != nil {
		cancel()
		a.wg.Wait()
		return nil, err
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.wake.loop(a.bg, a.refreshDue)
	}()
	a.log.Info("agent ready", "sessions", n, "store", cfg.Store.Backend())
	return a, nil
}

// Close stops background work and cancels logins in flight.
func (a *Agent) Close() error {
	a.cancel()
	a.wg.Wait()
	a.pol.Close()
	return nil
}

// ApplySettings replaces the settings (config reload). Sessions are kept.
func (a *Agent) ApplySettings(s *Settings) {
	if s == nil {
		s = &Settings{}
	}
	a.marginCap.Store(int64(s.RefreshMargin))
	a.mu.Lock()
	a.settings = s
	a.configErr = ""
	a.mu.Unlock()
	a.names.reset()
	a.events.publish(Event{Kind: EventConfigReloaded})
	a.pol.SettingsChanged()
	a.log.Info("config applied", "servers", len(s.Servers))
}

// ConfigRejected records why a new version of the config file was not
// applied; the agent keeps running on the previous one, and status says so
// until a valid version is applied.
func (a *Agent) ConfigRejected(err error) {
	a.mu.Lock()
	a.configErr = err.Error()
	a.mu.Unlock()
	a.log.Error("config not applied; keeping the previous one", "err", err)
	a.events.publish(Event{Kind: EventConfigReloaded, Error: err.Error()})
}

// Status describes the agent.
func (a *Agent) Status(ctx context.Context) (Status, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	st := Status{
		Version:       a.cfg.Version,
		PID:           os.Getpid(),
		StoreBackend:  a.cfg.Store.Backend(),
		StoreNotice:   store.Notice(a.cfg.Store),
		StoreUsage:    store.Usage(a.cfg.Store),
		Sessions:      len(a.sessions) + len(a.pending) + len(a.broken),
		Broken:        len(a.broken),
		Loading:       len(a.pending),
		Started:       a.started,
		Socket:        a.cfg.Socket,
		WebSocketURL:  a.cfg.WebSocketURL,
		ConfigPath:    a.cfg.ConfigPath,
		PendingLogins: len(a.logins),
		ConfigError:   a.configErr,
		Locked:        a.pol.Locked(),
	}
	for _, s := range a.sessions {
		si := s.info(a.now())
		if si.State == StateNeedsLogin {
			st.NeedsLogin++
		}
		if si.DPoP {
			st.KeyBound++
		}
		if si.Grant != "" {
			if st.Grants == nil {
				st.Grants = map[string]int{}
			}
			st.Grants[si.Grant]++
		}
	}
	return st, nil
}

// Sessions lists every session, without token material. Right after start
// it waits until the stored sessions are read; broken ones are listed with
// StateBroken, and ones the store failed to give StateError.
func (a *Agent) Sessions(ctx context.Context) ([]SessionInfo, error) {
	if err := a.allLoaded(ctx); err != nil {
		return nil, err
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	now := a.now()
	out := make([]SessionInfo, 0, len(a.sessions)+len(a.broken))
	for _, s := range a.sessions {
		out = append(out, a.decorateLocked(s.info(now)))
	}
	backend := a.cfg.Store.Backend()
	for _, b := range a.broken {
		out = append(out, b.info(backend))
	}
	for _, p := range a.pending {
		out = append(out, SessionInfo{ID: p.id, State: StateError, StoreBackend: backend,
			Error: "not read yet: " + p.lastErr + "; read again when asked for"})
	}
	sortSessions(out)
	return out, nil
}

// Subscribe returns a channel of events; see server.Backend.
func (a *Agent) Subscribe(ctx context.Context) <-chan Event { return a.events.subscribe(ctx) }

// decorateLocked adds what only the agent knows (configured name, backend).
func (a *Agent) decorateLocked(si SessionInfo) SessionInfo {
	si.Name = a.settings.NameFor(si.Server)
	si.StoreBackend = a.cfg.Store.Backend()
	return si
}

func (a *Agent) sessionInfo(s *session) SessionInfo {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.decorateLocked(s.info(a.now()))
}

// storeErr maps store failures onto the agent's sentinels.
func storeErr(err error) error {
	if errors.Is(err, store.ErrUnavailable) {
		return fmt.Errorf("%w: %v", ErrStoreUnavailable, err)
	}
	return err
}

package policy

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpkey/mcpkey/agent/config"
	"github.com/mcpkey/mcpkey/api"
)

// Options configures a Policy. Settings is required; the zero value of the
// other fields is usable.
type Options struct {
	// Settings returns the config in force (it changes on reload; call
	// SettingsChanged after it does).
	Settings func() *config.Settings
	// Resolve turns a configured name or a URL into the server's canonical
	// URL; restricted sockets name their servers either way. nil means
	// config.CanonicalServerURL (names are not known).
	Resolve func(ref string) (string, error)
	// Confirm turns on approval for every server (`mcpkey agent --confirm`).
	Confirm bool
	// Audit configures the audit log; an empty Path means none.
	Audit AuditOptions
	// Executable is the mcpkey executable whose tray may answer approvals
	// (see approverTerminal); "" means this process's.
	Executable string
	// DBusSessionAddress and DBusSystemAddress are the buses watched for
	// the screen lock and asked for polkit approvals; "" means the default
	// bus, "off" none.
	DBusSessionAddress string
	DBusSystemAddress  string
	// Logger receives the policy's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Publish announces approvals and the lock; nil drops the events.
	Publish func(api.Event)
	// OnLock takes away what a lock takes away (the in-memory sessions,
	// logins in flight) and reports how many sessions it dropped. The lock
	// calls it after it has refused the waiting approvals.
	OnLock func() int
}

// Policy is the agent's access control: the lock, approvals, deny and
// allow rules, the audit log and who the caller is. Decide is the one
// place a request is judged; Admit adds the audit record of a refusal and
// the wait for the user's answer. All methods are safe for concurrent use.
type Policy struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time

	// ctx is the policy's own context for background work (the idle and
	// screen-lock watchers, trusted prompts); cancelled by Close.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	locked atomic.Bool
	// lastActive is the clock's time (UnixNano) of the last admitted
	// request, for lock_after_idle.
	lastActive atomic.Int64
	alog       *auditLog
	kick       chan struct{} // wakes the idle loop after a settings change
	// policies caches approval policies for the current settings.
	policies atomic.Pointer[policyCache]

	// mu guards the fields below.
	mu         sync.Mutex
	remembered map[approvalKey]remembered
	pending    map[approvalKey]*approval
	byID       map[int]*approval
	nextID     int
	lockSalt   []byte
	lockHash   []byte // nil: locked without a passphrase
	failures   int    // wrong passphrases since the lock
	// unlockNotBefore is when the next unlock attempt may be checked:
	// the last failure's backoff, whether or not its guesser waited.
	unlockNotBefore time.Time
	stopScreen      func() // stops the screen-lock watcher; nil when off

	// unlockMu serialises unlock attempts, so parallel guesses cannot
	// dodge the backoff.
	unlockMu sync.Mutex
	// fp caches the content hashes remembered answers bind to.
	fp fingerprints
}

// New opens the audit log and starts the idle and screen-lock watchers.
// Close stops them.
func New(opts Options) (*Policy, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Publish == nil {
		opts.Publish = func(api.Event) {}
	}
	if opts.OnLock == nil {
		opts.OnLock = func() int { return 0 }
	}
	if opts.Resolve == nil {
		opts.Resolve = config.CanonicalServerURL
	}
	ctx, cancel := context.WithCancel(context.Background())
	po := &Policy{opts: opts, log: opts.Logger, now: opts.Now, ctx: ctx, cancel: cancel,
		kick:       make(chan struct{}, 1),
		remembered: make(map[approvalKey]remembered),
		pending:    make(map[approvalKey]*approval),
		byID:       make(map[int]*approval),
	}
	po.lastActive.Store(po.now().UnixNano())
	if opts.Audit.Path != "" {
		l, err := openAudit(opts.Audit, po.log)
		if err != nil {
			cancel()
			return nil, err
		}
		po.alog = l
	}
	po.wg.Add(1)
	go po.idleLoop()
	po.SettingsChanged()
	return po, nil
}

// Close stops the watchers, withdraws trusted prompts and flushes the
// audit log.
func (po *Policy) Close() {
	po.cancel()
	po.wg.Wait()
	po.mu.Lock()
	stop := po.stopScreen
	po.stopScreen = nil
	po.mu.Unlock()
	if stop != nil {
		stop()
	}
	po.alog.close()
}

// SettingsChanged applies the lock-related settings after New or a
// reload, and forgets the cached approval policies.
func (po *Policy) SettingsChanged() {
	// Forget cached policies even if the same *Settings was applied again.
	po.policies.Store(nil)
	s := po.opts.Settings()
	po.mu.Lock()
	on := po.stopScreen != nil
	po.mu.Unlock()
	switch {
	case s.LockOnScreenLock && !on && po.ctx.Err() == nil:
		stop, err := po.watchScreenLock(po.ctx)
		if err != nil {
			po.log.Warn("lock_on_screen_lock: cannot watch the screen lock", "err", err)
			break
		}
		po.mu.Lock()
		po.stopScreen = stop
		po.mu.Unlock()
	case !s.LockOnScreenLock && on:
		po.mu.Lock()
		stop := po.stopScreen
		po.stopScreen = nil
		po.mu.Unlock()
		stop()
	}
	po.wakeIdle()
}

func (po *Policy) wakeIdle() {
	select {
	case po.kick <- struct{}{}:
	default:
	}
}

// Op names what a request wants done; the values are the protocol's
// method names (ipc.Methods).
type Op string

// The operations Decide judges. Ops not listed here are admitted, but not
// on a restricted socket.
const (
	OpToken     Op = "token.get"
	OpLogin     Op = "session.login"
	OpLogout    Op = "session.logout"
	OpImport    Op = "session.import" // judged as a login: it adds a session
	OpSecretGet Op = "secret.get"
	OpSecretSet Op = "secret.set"
	OpSecretDel Op = "secret.delete"
	// OpSocketAdd opens a restricted socket: a new way in, which a locked
	// agent does not open.
	OpSocketAdd Op = "socket.add"
	// OpManage covers the requests that manage the agent itself: the
	// approvals (list, answer) and the lock; a restricted socket serves
	// none of them, and they are answered while locked.
	OpManage Op = "manage"
)

// Request is what Decide judges. The caller (WithCaller) and the
// restricted socket it came through (WithRestriction) travel in the
// request's context.
type Request struct {
	Op Op
	// Server is the server's canonical URL, "" when the request names none
	// (a logout of every session); Name its configured name, "" when it is
	// not configured.
	Server string
	Name   string
	// Account and Scopes are what a token, login or logout is for.
	Account string
	Scopes  []string
	// Secret is the static secret's name (the secret ops).
	Secret string
}

// Verdict is the outcome of a Decision.
type Verdict int

const (
	// Allow: serve the request.
	Allow Verdict = iota
	// Deny: refuse it with Decision.Err.
	Deny
	// Ask: only the user can decide; Await waits for the answer.
	Ask
)

// Kind says why a request is refused.
type Kind string

const (
	KindRestricted Kind = "restricted" // not served by the restricted socket it came through
	KindLocked     Kind = "locked"     // the agent is locked
	KindDenyRule   Kind = "deny_rule"  // a deny rule in the config matches the caller
)

// Decision is Decide's answer.
type Decision struct {
	Verdict Verdict
	// Kind and Err say why a request is denied; Err wraps api.ErrDenied or
	// api.ErrLocked and is what the caller is told.
	Kind Kind
	Err  error
	// Audit is the audit log's record of a refusal; nil when the refusal
	// is not audited (the lock).
	Audit *AuditRecord

	// For Ask: the caller as judged, and the policy it is asked under.
	caller Caller
	req    Request
	pol    config.ApprovalPolicy
}

func deny(kind Kind, err error, audit *AuditRecord) Decision {
	return Decision{Verdict: Deny, Kind: kind, Err: err, Audit: audit}
}

// Admit is Decide followed by what a decision asks for: it writes the
// audit record of a refusal, and for Ask waits for the user (Await). It
// returns nil when the request may be served.
func (po *Policy) Admit(ctx context.Context, req Request) error {
	d := po.Decide(ctx, req)
	if d.Audit != nil {
		po.Audit(ctx, *d.Audit)
	}
	switch d.Verdict {
	case Allow:
		return nil
	case Ask:
		return po.Await(ctx, d)
	}
	return d.Err
}

// Decide judges req for the caller in ctx. It is the agent's single
// access-control point, and never blocks. In this order:
//
//   - a restricted socket serves tokens for its servers only: no logins,
//     logouts, secrets, restricted sockets or management;
//   - a locked agent serves no token, login, logout or secret, and opens
//     no restricted socket;
//   - the config's deny rules, against the caller's whole chain (see
//     principal): for a server, its rules (the top-level ones merged in);
//     for a secret, the top-level rules and those of every server whose
//     headers or env reference it;
//   - for token.get under confirm, the approval policy: allow rules and a
//     remembered "allow" admit; anything else (a remembered denial
//     included) is Ask, settled by Await.
//
// Requests without a Caller (in-process calls) are trusted past the
// restriction and the lock.
func (po *Policy) Decide(ctx context.Context, req Request) Decision {
	r, restricted := restrictionFrom(ctx)
	switch req.Op {
	case OpToken, OpLogin, OpLogout, OpImport:
		// (The ipc server refuses logins and logouts on a restricted socket
		// before they get here; the decision is the same.)
		if restricted && !po.allows(r, req.Server) {
			return deny(KindRestricted, fmt.Errorf("%w: this socket serves only %s", api.ErrDenied, strings.Join(r.servers, ", ")),
				&AuditRecord{Event: AuditDenied, Server: req.Server, Account: req.Account, Scopes: req.Scopes, Reason: "not served by this restricted socket"})
		}
	case OpSecretGet, OpSecretSet, OpSecretDel:
		if restricted {
			return deny(KindRestricted, fmt.Errorf("%w: this socket serves only tokens for %s", api.ErrDenied, strings.Join(r.servers, ", ")),
				&AuditRecord{Event: AuditDenied, Reason: "secret " + req.Secret + ": not served by this restricted socket"})
		}
	case OpSocketAdd:
		switch {
		case restricted:
			return deny(KindRestricted, fmt.Errorf("%w: not on a restricted socket", api.ErrDenied), nil)
		case po.locked.Load():
			return deny(KindLocked, fmt.Errorf("%w: run `mcpkey unlock`", api.ErrLocked), nil)
		}
		return Decision{Verdict: Allow}
	default:
		if restricted {
			return deny(KindRestricted, fmt.Errorf("%w: not on a restricted socket", api.ErrDenied), nil)
		}
		return Decision{Verdict: Allow}
	}
	if po.locked.Load() {
		return deny(KindLocked, fmt.Errorf("%w: run `mcpkey unlock`", api.ErrLocked), nil)
	}
	now := po.now()
	po.lastActive.Store(now.UnixNano()) // Touch, with the time Decide uses
	c, ok := CallerFrom(ctx)
	if !ok || c.Transport == "in-process" {
		return Decision{Verdict: Allow}
	}
	if req.Op != OpToken && req.Op != OpLogin && req.Op != OpLogout && req.Op != OpImport {
		return po.decideSecret(ctx, c, req)
	}
	pol := po.approvalPolicy(req.Name)
	confirm := req.Op == OpToken && (pol.Confirm || po.opts.Confirm)
	if len(pol.Deny) == 0 && !confirm {
		return Decision{Verdict: Allow}
	}
	// Judge the program that asked and its parents, not just the peer
	// (see principal); this reads /proc, so only when a rule needs it.
	c, p, id := po.judge(ctx, c, confirm)
	if exe := deniedBy(pol.Deny, c); exe != "" {
		return deny(KindDenyRule, fmt.Errorf("%w: %s may not use %s (a deny rule in the config matches %s)", api.ErrDenied, c.Describe(), req.Server, exe),
			&AuditRecord{Event: AuditDenied, Server: req.Server, Account: req.Account, Scopes: req.Scopes, Reason: "deny rule"})
	}
	if !confirm {
		return Decision{Verdict: Allow}
	}
	if p.Exe != "" && matchAny(pol.Allow, p.Exe) {
		return Decision{Verdict: Allow}
	}
	if po.rememberedAllow(id, req.Server, now) {
		return Decision{Verdict: Allow}
	}
	return Decision{Verdict: Ask, caller: c, req: req, pol: pol}
}

// allows reports whether serverURL (canonical) is one of r's servers.
func (po *Policy) allows(r restriction, serverURL string) bool {
	for _, s := range r.servers {
		if u, err := po.opts.Resolve(s); err == nil && u == serverURL {
			return true
		}
	}
	return false
}

// rememberedAllow reports whether the user allowed the program with
// identity id for server and asked for that to be remembered, until a time
// not yet reached.
func (po *Policy) rememberedAllow(id, server string, now time.Time) bool {
	key := approvalKey{id, server}
	po.mu.Lock()
	r, ok := po.remembered[key]
	po.mu.Unlock()
	return ok && r.allow && now.Before(r.until)
}

// policyCache holds the approval policy of each server for one settings
// version: Settings.ApprovalPolicy allocates when deny rules are merged,
// which token.get should not do per call.
type policyCache struct {
	s *config.Settings
	m sync.Map // server name -> config.ApprovalPolicy
}

// approvalPolicy is Settings().ApprovalPolicy(name), cached per settings
// version (a reload installs a new *Settings).
func (po *Policy) approvalPolicy(name string) config.ApprovalPolicy {
	s := po.opts.Settings()
	pc := po.policies.Load()
	if pc == nil || pc.s != s {
		pc = &policyCache{s: s}
		po.policies.Store(pc)
	}
	if v, ok := pc.m.Load(name); ok {
		return v.(config.ApprovalPolicy)
	}
	p := s.ApprovalPolicy(name)
	pc.m.Store(name, p)
	return p
}

// matchAny reports whether exe matches one of the globs (filepath.Match).
func matchAny(globs []string, exe string) bool {
	return slices.ContainsFunc(globs, func(g string) bool {
		ok, _ := filepath.Match(g, exe)
		return ok
	})
}

// idleLoop locks after lock_after_idle without a request.
func (po *Policy) idleLoop() {
	defer po.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		wait := time.Hour
		if idle := po.opts.Settings().LockAfterIdle; idle > 0 && !po.locked.Load() {
			due := time.Unix(0, po.lastActive.Load()).Add(idle)
			if now := po.now(); !now.Before(due) {
				po.lockBy("idle for " + idle.String())
			} else {
				wait = min(wait, due.Sub(now))
			}
		}
		t.Reset(wait)
		select {
		case <-po.ctx.Done():
			return
		case <-po.kick:
		case <-t.C:
		}
	}
}

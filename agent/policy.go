package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// guard is the agent's access-control state: lock, approvals, audit. The
// zero value is an unlocked agent with nothing remembered and no audit log.
type guard struct {
	locked atomic.Bool
	// lastActive is the agent-clock time (UnixNano) of the last admitted
	// request, for lock_after_idle.
	lastActive atomic.Int64
	audit      *auditLog
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

// startGuard opens the audit log and starts the idle and screen-lock
// watchers. New calls it once.
func (a *Agent) startGuard() error {
	a.g.kick = make(chan struct{}, 1)
	a.g.remembered = make(map[approvalKey]remembered)
	a.g.pending = make(map[approvalKey]*approval)
	a.g.byID = make(map[int]*approval)
	a.g.lastActive.Store(a.now().UnixNano())
	if a.cfg.Audit.Path != "" {
		l, err := openAudit(a.cfg.Audit, a.log)
		if err != nil {
			return err
		}
		a.g.audit = l
	}
	a.wg.Add(1)
	go a.idleLoop()
	a.settingsChanged()
	return nil
}

// stopGuard stops the watchers and flushes the audit log. Close calls it
// after background work has stopped.
func (a *Agent) stopGuard() {
	a.g.mu.Lock()
	stop := a.g.stopScreen
	a.g.stopScreen = nil
	a.g.mu.Unlock()
	if stop != nil {
		stop()
	}
	a.g.audit.close()
}

// settingsChanged applies the lock-related settings after New or a reload.
func (a *Agent) settingsChanged() {
	// Forget cached policies even if the same *Settings was applied again.
	a.g.policies.Store(nil)
	s := a.currentSettings()
	a.g.mu.Lock()
	on := a.g.stopScreen != nil
	a.g.mu.Unlock()
	switch {
	case s.LockOnScreenLock && !on && a.bg.Err() == nil:
		stop, err := a.watchScreenLock(a.bg)
		if err != nil {
			a.log.Warn("lock_on_screen_lock: cannot watch the screen lock", "err", err)
			break
		}
		a.g.mu.Lock()
		a.g.stopScreen = stop
		a.g.mu.Unlock()
	case !s.LockOnScreenLock && on:
		a.g.mu.Lock()
		stop := a.g.stopScreen
		a.g.stopScreen = nil
		a.g.mu.Unlock()
		stop()
	}
	select {
	case a.g.kick <- struct{}{}:
	default:
	}
}

func (a *Agent) currentSettings() *Settings {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.settings
}

// restriction limits a request to some servers: requests that arrive on a
// restricted socket carry one (WithRestriction).
type restriction struct {
	socket  string
	servers []string
}

type restrictionKey struct{}

// WithRestriction returns ctx for a request that arrived on the restricted
// socket at path: the agent refuses it (ErrDenied) any server but these
// (configured names or URLs).
func WithRestriction(ctx context.Context, socket string, servers []string) context.Context {
	return context.WithValue(ctx, restrictionKey{}, restriction{socket: socket, servers: servers})
}

func restrictionFrom(ctx context.Context) (restriction, bool) {
	r, ok := ctx.Value(restrictionKey{}).(restriction)
	return r, ok
}

// allows reports whether serverURL (canonical) is one of r's servers.
func (a *Agent) allows(r restriction, serverURL string) bool {
	for _, s := range r.servers {
		if t, err := a.resolve(s); err == nil && t.url == serverURL {
			return true
		}
	}
	return false
}

// admit decides whether the caller in ctx may do op ("token.get",
// "session.login", "session.logout") for the server t.url with these
// scopes. It is the single access-control point of the agent, in this
// order: a restricted socket's server list, the lock, the config's deny
// rules (every op), then for token.get the approval policy: allow rules
// admit, and with confirm on an unapproved caller waits for the user
// (see approve). Requests without a Caller (in-process calls) are trusted.
// admitQuick makes every decision but the wait; admit adds the audit
// record of a refusal and the wait.
func (a *Agent) admit(ctx context.Context, op string, t target, account string, scopes []string) error {
	v := a.admitQuick(ctx, op, t, account)
	if v.auditReason != "" {
		a.audit(ctx, AuditRecord{Event: AuditDenied, Server: t.url, Account: account, Scopes: scopes, Reason: v.auditReason})
	}
	if v.admitted || v.err != nil {
		return v.err
	}
	return a.approve(ctx, v.caller, t, account, scopes, v.pol)
}

// admission is admitQuick's verdict: admitted, refused (err), or neither
// when only the user can decide (an approval for caller under pol).
type admission struct {
	admitted bool
	err      error
	// auditReason is the audit log's reason for a refusal; "" when the
	// refusal is not audited (the lock).
	auditReason string
	caller      Caller
	pol         ApprovalPolicy
}

// admitQuick is admit without waiting and without writing the audit log:
// it never blocks; admit runs it first and waits only for what it leaves
// open. A remembered "allow" admits here; anything else about an
// approval (a remembered denial included) is left to approve.
func (a *Agent) admitQuick(ctx context.Context, op string, t target, account string) admission {
	if r, ok := restrictionFrom(ctx); ok && !a.allows(r, t.url) {
		return admission{auditReason: "not served by this restricted socket",
			err: fmt.Errorf("%w: this socket serves only %s", ErrDenied, strings.Join(r.servers, ", "))}
	}
	if a.g.locked.Load() {
		return admission{err: fmt.Errorf("%w: run `mcpkey unlock`", ErrLocked)}
	}
	now := a.now()
	a.g.lastActive.Store(now.UnixNano())
	c, ok := CallerFrom(ctx)
	if !ok || c.Transport == "in-process" {
		return admission{admitted: true}
	}
	pol := a.approvalPolicy(t.settings.Name)
	confirm := op == "token.get" && (pol.Confirm || a.cfg.Confirm)
	if len(pol.Deny) == 0 && !confirm {
		return admission{admitted: true}
	}
	// Judge the program that asked and its parents, not just the peer
	// (see principal); this reads /proc, so only when a rule needs it.
	c, p, id := a.judge(ctx, c, confirm)
	if exe := deniedBy(pol.Deny, c); exe != "" {
		return admission{auditReason: "deny rule",
			err: fmt.Errorf("%w: %s may not use %s (a deny rule in the config matches %s)", ErrDenied, c.Describe(), t.url, exe)}
	}
	if !confirm {
		return admission{admitted: true}
	}
	if p.Exe != "" && matchAny(pol.Allow, p.Exe) {
		return admission{admitted: true}
	}
	if a.rememberedAllow(id, t.url, now) {
		return admission{admitted: true}
	}
	return admission{caller: c, pol: pol}
}

// rememberedAllow reports whether the user allowed the program with
// identity id for server and asked for that to be remembered, until a time
// not yet reached.
func (a *Agent) rememberedAllow(id, server string, now time.Time) bool {
	key := approvalKey{id, server}
	a.g.mu.Lock()
	r, ok := a.g.remembered[key]
	a.g.mu.Unlock()
	return ok && r.allow && now.Before(r.until)
}

// policyCache holds the approval policy of each server for one settings
// version: Settings.ApprovalPolicy allocates when deny rules are merged,
// which token.get should not do per call.
type policyCache struct {
	s *Settings
	m sync.Map // server name -> ApprovalPolicy
}

// approvalPolicy is a.currentSettings().ApprovalPolicy(name), cached per
// settings version (a reload installs a new *Settings).
func (a *Agent) approvalPolicy(name string) ApprovalPolicy {
	s := a.currentSettings()
	pc := a.g.policies.Load()
	if pc == nil || pc.s != s {
		pc = &policyCache{s: s}
		a.g.policies.Store(pc)
	}
	if v, ok := pc.m.Load(name); ok {
		return v.(ApprovalPolicy)
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

// idleLoop locks the agent after lock_after_idle without a request.
func (a *Agent) idleLoop() {
	defer a.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		wait := time.Hour
		if idle := a.currentSettings().LockAfterIdle; idle > 0 && !a.g.locked.Load() {
			due := time.Unix(0, a.g.lastActive.Load()).Add(idle)
			if now := a.now(); !now.Before(due) {
				a.lockBy("idle for " + idle.String())
			} else {
				wait = min(wait, due.Sub(now))
			}
		}
		t.Reset(wait)
		select {
		case <-a.bg.Done():
			return
		case <-a.g.kick:
		case <-t.C:
		}
	}
}

// CurrentSettings returns the settings in force (after the last reload).
func (a *Agent) CurrentSettings() *Settings { return a.currentSettings() }

package tray

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcpkey/mcpkey/api"
)

// view is everything the tray knows about the agent: the input of the menu
// model. It holds no secrets (sessions.list never carries tokens).
type view struct {
	// Reachable is false when no agent answers; Err says why.
	Reachable bool
	Err       string
	Status    api.Status
	Sessions  []api.SessionInfo
	Approvals []Approval
	// CanLock and CanApprove say whether the agent serves lock/unlock and
	// the approval methods; items for what it lacks are left out.
	CanLock, CanApprove bool
}

// Approval is a token request waiting for the user's decision, as the tray
// shows it.
type Approval struct {
	ID string
	// Program is the calling executable (path or name) and PID its pid.
	Program string
	PID     int
	Server  string
	// Name is the server's configured name, if any.
	Name    string
	Account string
	Scopes  []string
	// Remember is how long "Allow for …" holds; 0 offers only "Allow once".
	Remember time.Duration
	// Via names the trusted prompt that alone may allow (approval =
	// "polkit"): the tray then offers Deny only.
	Via string
}

// Decision answers an Approval.
type Decision int

const (
	Deny Decision = iota
	AllowOnce
	AllowRemember
)

// actionKind is what a menu item does when clicked.
type actionKind int

const (
	actNone actionKind = iota
	actLogin
	actLogout
	actLogoutRevoke
	actApprove // approval, with decision
	actLock
	actUnlock
	actOpenConfig
	actOpenLog
	actStartAgent
	actQuit
)

// action is a click's meaning, with what it acts on.
type action struct {
	kind            actionKind
	server, account string
	approval        string
	decision        Decision
}

// item is one menu entry. Items are compared by key to update the live menu
// in place when only labels change.
type item struct {
	key      string // stable identity across renders
	label    string
	tooltip  string
	disabled bool
	sep      bool
	act      action
	kids     []item
}

// iconState is which icon the tray shows.
type iconState int

const (
	iconReady iconState = iota
	iconAttention
	iconLocked
	iconError
)

func (s iconState) String() string {
	return [...]string{"ready", "attention", "locked", "error"}[s]
}

// menuFor is the menu for v at time now. It is a pure function: the tray
// renders its result and nothing else.
func menuFor(v view, now time.Time) []item {
	sep := func(k string) item { return item{key: "sep/" + k, sep: true} }
	var m []item
	m = append(m, item{key: "header", label: "mcpkey: " + summary(v), disabled: true})
	if !v.Reachable {
		tip := "no agent answers on its socket"
		if v.Err != "" {
			tip = v.Err
		}
		m = append(m, item{key: "start", label: "Start agent", tooltip: tip, act: action{kind: actStartAgent}}, sep("agent"))
	} else {
		if v.Status.ConfigError != "" {
			m = append(m, item{key: "config-error", label: "config rejected: " + clip(v.Status.ConfigError, 60),
				tooltip: v.Status.ConfigError, disabled: true})
		}
		m = append(m, sep("sessions"))
		if len(v.Sessions) == 0 {
			m = append(m, item{key: "no-sessions", label: "No sessions (run: mcpkey login <server>)", disabled: true})
		}
		// Sorted: the agent lists sessions in no particular order, and a
		// reordered menu would be rebuilt under the user's pointer.
		ss := slices.Clone(v.Sessions)
		slices.SortStableFunc(ss, func(a, b api.SessionInfo) int {
			return cmp.Or(cmp.Compare(serverName(a), serverName(b)), cmp.Compare(a.Account, b.Account), cmp.Compare(a.Server, b.Server))
		})
		for _, s := range ss {
			m = append(m, sessionItem(s, now))
		}
		if v.CanApprove && len(v.Approvals) > 0 {
			m = append(m, sep("approvals"))
			for _, a := range v.Approvals {
				m = append(m, approvalItem(a))
			}
		}
		m = append(m, sep("agent"))
		if v.CanLock {
			if v.Status.Locked {
				m = append(m, item{key: "unlock", label: "Unlock", act: action{kind: actUnlock}})
			} else {
				m = append(m, item{key: "lock", label: "Lock", tooltip: "refuse every token request until unlocked", act: action{kind: actLock}})
			}
		}
	}
	m = append(m,
		item{key: "open-config", label: "Open config", act: action{kind: actOpenConfig}},
		item{key: "open-log", label: "Open log", act: action{kind: actOpenLog}},
		sep("quit"),
		item{key: "quit", label: "Quit", act: action{kind: actQuit}},
	)
	return m
}

func sessionItem(s api.SessionInfo, now time.Time) item {
	id := s.Server + "\x00" + s.Account
	who := serverName(s)
	if s.Account != "" {
		who += " (" + s.Account + ")"
	}
	tip := s.Server
	if s.Issuer != "" {
		tip += " via " + s.Issuer
	}
	if len(s.Scopes) > 0 {
		tip += "; scopes: " + strings.Join(s.Scopes, " ")
	}
	label := who + ": " + stateLabel(s, now)
	if s.DPoP {
		label += ", key-bound"
		tip += "; tokens bound to a key only the agent holds (DPoP)"
	}
	if s.Grant != api.GrantAuthorizationCode {
		// A grant without a browser: say so, as its renewals need no one.
		label += " · " + api.GrantLabel(s.Grant)
		tip += "; signs in with the " + s.Grant + " grant, without a browser"
	}
	login := "Log in"
	if s.State == api.StateNeedsLogin {
		login = "Log in again"
	}
	at := action{server: s.Server, account: s.Account}
	with := func(k actionKind) action { a := at; a.kind = k; return a }
	return item{key: "session/" + id, label: label, tooltip: tip, kids: []item{
		{key: "session/" + id + "/login", label: login, disabled: s.State == api.StateAuthorizing, act: with(actLogin)},
		{key: "session/" + id + "/logout", label: "Log out", tooltip: "remove the session here; keep the grant at the authorization server", act: with(actLogout)},
		{key: "session/" + id + "/revoke", label: "Log out and revoke", tooltip: "remove the session and revoke it at the authorization server", act: with(actLogoutRevoke)},
	}}
}

func approvalItem(a Approval) item {
	prog := cmp.Or(a.Program, "a program")
	if a.PID > 0 {
		prog = fmt.Sprintf("%s [%d]", prog, a.PID)
	}
	what := a.Name
	if what == "" {
		what = hostOf(a.Server)
	}
	if a.Account != "" {
		what += " (" + a.Account + ")"
	}
	label := prog + " asks for " + what
	if len(a.Scopes) > 0 {
		label += ": " + strings.Join(a.Scopes, " ")
	}
	act := func(d Decision) action { return action{kind: actApprove, approval: a.ID, decision: d} }
	if a.Via != "" {
		return item{key: "approval/" + a.ID, label: label, tooltip: a.Server, kids: []item{
			{key: "approval/" + a.ID + "/via", label: "Allow: enter your password in the " + a.Via + " dialog", disabled: true},
			{key: "approval/" + a.ID + "/deny", label: "Deny", act: act(Deny)}}}
	}
	kids := []item{{key: "approval/" + a.ID + "/once", label: "Allow once", act: act(AllowOnce)}}
	if a.Remember > 0 {
		kids = append(kids, item{key: "approval/" + a.ID + "/remember", label: "Allow for " + humanDuration(a.Remember), act: act(AllowRemember)})
	}
	kids = append(kids, item{key: "approval/" + a.ID + "/deny", label: "Deny", act: act(Deny)})
	return item{key: "approval/" + a.ID, label: label, tooltip: a.Server, kids: kids}
}

// stateLabel is a session's state in a few words: "valid 42 min",
// "refreshing", "needs login", "error: …".
func stateLabel(s api.SessionInfo, now time.Time) string {
	switch s.State {
	case api.StateRefreshing:
		return "refreshing"
	case api.StateAuthorizing:
		return "signing in…"
	case api.StateNeedsLogin:
		return "needs login"
	case api.StateError:
		if s.Error == "" {
			return "error"
		}
		return "error: " + clip(s.Error, 60)
	}
	if s.ExpiresAt.IsZero() {
		return "valid, no expiry given"
	}
	left := s.ExpiresAt.Sub(now)
	if left <= 0 {
		if s.HasRefresh {
			return "expired, refreshes on use"
		}
		return "expired"
	}
	return "valid " + humanDuration(left)
}

// humanDuration is d rounded down to minutes or hours: "42 min", "3 h",
// "2 days"; under a minute, "<1 min".
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "<1 min"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 || h >= 10 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %d min", h, m)
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

// iconFor is the icon for v: unreachable → error, locked, then attention
// when a session needs a login or an approval waits, then error when a
// session's refresh is failing, else ready.
func iconFor(v view) iconState {
	if !v.Reachable {
		return iconError
	}
	if v.Status.Locked {
		return iconLocked
	}
	if v.CanApprove && len(v.Approvals) > 0 {
		return iconAttention
	}
	failing := false
	for _, s := range v.Sessions {
		switch s.State {
		case api.StateNeedsLogin:
			return iconAttention
		case api.StateError:
			failing = true
		}
	}
	if failing {
		return iconError
	}
	return iconReady
}

// tooltipFor is the one-line summary shown on hover.
func tooltipFor(v view) string { return "mcpkey: " + summary(v) }

func summary(v view) string {
	if !v.Reachable {
		return "agent unreachable"
	}
	var parts []string
	if v.Status.Locked {
		parts = append(parts, "locked")
	}
	n, needs, failing := len(v.Sessions), 0, 0
	for _, s := range v.Sessions {
		switch s.State {
		case api.StateNeedsLogin:
			needs++
		case api.StateError:
			failing++
		}
	}
	parts = append(parts, plural(n, "session", "sessions"))
	if needs > 0 {
		parts = append(parts, fmt.Sprintf("%d needs login", needs))
	}
	if failing > 0 {
		parts = append(parts, fmt.Sprintf("%d failing", failing))
	}
	if v.CanApprove && len(v.Approvals) > 0 {
		parts = append(parts, plural(len(v.Approvals), "approval waiting", "approvals waiting"))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// serverName is a session's configured name, else its URL's host and path.
func serverName(s api.SessionInfo) string {
	if s.Name != "" {
		return s.Name
	}
	return hostOf(s.Server)
}

func hostOf(server string) string {
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return server
	}
	return u.Host + strings.TrimSuffix(u.Path, "/")
}

// clip shortens s to at most n runes, on one line.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// shapeOf is the menu's structure: the keys in order, with nesting.
func shapeOf(items []item) string {
	s := ""
	for _, it := range items {
		s += it.key + "\x01"
		if len(it.kids) > 0 {
			s += "(" + shapeOf(it.kids) + ")"
		}
	}
	return s
}

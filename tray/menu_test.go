package tray

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/api"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// flat renders items as lines: "label", "  kid", "---" for separators, a
// "[x]" suffix for disabled items.
func flat(items []item) []string {
	var out []string
	var walk func([]item, string)
	walk = func(items []item, indent string) {
		for _, it := range items {
			if it.sep {
				out = append(out, indent+"---")
				continue
			}
			l := indent + it.label
			if it.disabled {
				l += " [x]"
			}
			out = append(out, l)
			walk(it.kids, indent+"  ")
		}
	}
	walk(items, "")
	return out
}

func find(items []item, label string) *item {
	for i := range items {
		if items[i].label == label {
			return &items[i]
		}
		if k := find(items[i].kids, label); k != nil {
			return k
		}
	}
	return nil
}

func sess(server, account string, st api.SessionState, exp time.Duration) api.SessionInfo {
	s := api.SessionInfo{Server: server, Account: account, State: st, Issuer: "https://as.example", HasRefresh: true, Scopes: []string{"mcp:tools"}}
	if exp != 0 {
		s.ExpiresAt = now.Add(exp)
	}
	return s
}

func TestMenuFor(t *testing.T) {
	const gh = "https://mcp.github.example/mcp"
	const lin = "https://linear.example/mcp"
	tail := []string{"Open config", "Open log", "---", "Quit"}
	sessionKids := func(login string) []string {
		return []string{"  " + login, "  Log out", "  Log out and revoke"}
	}
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	appr := Approval{ID: "a1", Program: "/usr/bin/node", PID: 4242, Server: gh, Scopes: []string{"mcp:tools", "repo"}, Remember: 8 * time.Hour}

	tests := []struct {
		name    string
		v       view
		want    []string
		icon    iconState
		tooltip string
	}{{
		name:    "unreachable",
		v:       view{Err: "dial unix /run/user/1000/mcpkey/agent.sock: connect: no such file or directory"},
		want:    cat([]string{"mcpkey: agent unreachable [x]", "Start agent", "---"}, tail),
		icon:    iconError,
		tooltip: "mcpkey: agent unreachable",
	}, {
		name:    "no sessions",
		v:       view{Reachable: true},
		want:    cat([]string{"mcpkey: 0 sessions [x]", "---", "No sessions (run: mcpkey login <server>) [x]", "---"}, tail),
		icon:    iconReady,
		tooltip: "mcpkey: 0 sessions",
	}, {
		name: "ready, named, with account",
		v: view{Reachable: true, Sessions: []api.SessionInfo{
			func() api.SessionInfo {
				s := sess(gh, "alice", api.StateReady, 42*time.Minute+30*time.Second)
				s.Name = "github"
				return s
			}(),
		}},
		want:    cat([]string{"mcpkey: 1 session [x]", "---", "github (alice): valid 42 min"}, sessionKids("Log in"), []string{"---"}, tail),
		icon:    iconReady,
		tooltip: "mcpkey: 1 session",
	}, {
		name: "every session state",
		v: view{Reachable: true, Sessions: []api.SessionInfo{
			sess(gh, "", api.StateRefreshing, time.Minute),
			sess(lin, "", api.StateNeedsLogin, 0),
			func() api.SessionInfo {
				s := sess("https://x.example/", "", api.StateError, -time.Minute)
				s.Error = "refresh: dial tcp: connection refused"
				return s
			}(),
			sess("https://y.example/mcp", "bob", api.StateAuthorizing, 0),
			sess("https://z.example/mcp", "", api.StateReady, -time.Minute),
		}},
		want: cat([]string{"mcpkey: 5 sessions, 1 needs login, 1 failing [x]", "---",
			"linear.example/mcp: needs login"}, sessionKids("Log in again"),
			[]string{"mcp.github.example/mcp: refreshing"}, sessionKids("Log in"),
			[]string{"x.example: error: refresh: dial tcp: connection refused"}, sessionKids("Log in"),
			[]string{"y.example/mcp (bob): signing in…", "  Log in [x]", "  Log out", "  Log out and revoke"},
			[]string{"z.example/mcp: expired, refreshes on use"}, sessionKids("Log in"),
			[]string{"---"}, tail),
		icon:    iconAttention,
		tooltip: "mcpkey: 5 sessions, 1 needs login, 1 failing",
	}, {
		name: "refresh failing",
		v: view{Reachable: true, Sessions: []api.SessionInfo{
			sess(gh, "", api.StateError, time.Hour),
		}},
		want:    cat([]string{"mcpkey: 1 session, 1 failing [x]", "---", "mcp.github.example/mcp: error"}, sessionKids("Log in"), []string{"---"}, tail),
		icon:    iconError,
		tooltip: "mcpkey: 1 session, 1 failing",
	}, {
		name: "lock offered",
		v:    view{Reachable: true, CanLock: true, Sessions: []api.SessionInfo{sess(gh, "", api.StateReady, 3*time.Hour+5*time.Minute)}},
		want: cat([]string{"mcpkey: 1 session [x]", "---", "mcp.github.example/mcp: valid 3 h 5 min"}, sessionKids("Log in"),
			[]string{"---", "Lock"}, tail),
		icon:    iconReady,
		tooltip: "mcpkey: 1 session",
	}, {
		name:    "locked",
		v:       view{Reachable: true, CanLock: true, Status: api.Status{Locked: true}},
		want:    cat([]string{"mcpkey: locked, 0 sessions [x]", "---", "No sessions (run: mcpkey login <server>) [x]", "---", "Unlock"}, tail),
		icon:    iconLocked,
		tooltip: "mcpkey: locked, 0 sessions",
	}, {
		name: "locked beats needs login",
		v:    view{Reachable: true, Status: api.Status{Locked: true}, Sessions: []api.SessionInfo{sess(gh, "", api.StateNeedsLogin, 0)}},
		want: cat([]string{"mcpkey: locked, 1 session, 1 needs login [x]", "---", "mcp.github.example/mcp: needs login"},
			sessionKids("Log in again"), []string{"---"}, tail),
		icon:    iconLocked,
		tooltip: "mcpkey: locked, 1 session, 1 needs login",
	}, {
		name: "approval waiting",
		v: view{Reachable: true, CanApprove: true, Approvals: []Approval{appr},
			Sessions: []api.SessionInfo{sess(gh, "", api.StateReady, 2*24*time.Hour)}},
		want: cat([]string{"mcpkey: 1 session, 1 approval waiting [x]", "---", "mcp.github.example/mcp: valid 2 days"}, sessionKids("Log in"),
			[]string{"---", "/usr/bin/node [4242] asks for mcp.github.example/mcp: mcp:tools repo",
				"  Allow once", "  Allow for 8 h", "  Deny", "---"}, tail),
		icon:    iconAttention,
		tooltip: "mcpkey: 1 session, 1 approval waiting",
	}, {
		name: "approval answered only in polkit's dialog",
		v:    view{Reachable: true, CanApprove: true, Approvals: []Approval{{ID: "9", Program: "/usr/bin/node", PID: 4242, Server: gh, Remember: 8 * time.Hour, Via: "polkit"}}},
		want: cat([]string{"mcpkey: 0 sessions, 1 approval waiting [x]", "---", "No sessions (run: mcpkey login <server>) [x]", "---",
			"/usr/bin/node [4242] asks for mcp.github.example/mcp", "  Allow: enter your password in the polkit dialog [x]", "  Deny", "---"}, tail),
		icon: iconAttention, tooltip: "mcpkey: 0 sessions, 1 approval waiting",
	}, {
		name: "approval without remember, agent without approvals",
		v:    view{Reachable: true, CanApprove: false, Approvals: []Approval{appr}},
		want: cat([]string{"mcpkey: 0 sessions [x]", "---", "No sessions (run: mcpkey login <server>) [x]", "---"}, tail),
		icon: iconReady, tooltip: "mcpkey: 0 sessions",
	}, {
		name: "config rejected",
		v:    view{Reachable: true, Status: api.Status{ConfigError: "line 3: unknown key \"bakend\""}},
		want: cat([]string{"mcpkey: 0 sessions [x]", "config rejected: line 3: unknown key \"bakend\" [x]", "---",
			"No sessions (run: mcpkey login <server>) [x]", "---"}, tail),
		icon: iconReady, tooltip: "mcpkey: 0 sessions",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := menuFor(tc.v, now)
			if got := flat(m); !slices.Equal(got, tc.want) {
				t.Errorf("menu:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if got := iconFor(tc.v); got != tc.icon {
				t.Errorf("icon = %v, want %v", got, tc.icon)
			}
			if got := tooltipFor(tc.v); got != tc.tooltip {
				t.Errorf("tooltip = %q, want %q", got, tc.tooltip)
			}
			// Keys are unique: the renderer finds items by key.
			seen := map[string]bool{}
			var walk func([]item)
			walk = func(items []item) {
				for _, it := range items {
					if seen[it.key] {
						t.Errorf("duplicate key %q", it.key)
					}
					seen[it.key] = true
					walk(it.kids)
				}
			}
			walk(m)
		})
	}
}

func TestMenuActions(t *testing.T) {
	const gh = "https://mcp.github.example/mcp"
	v := view{Reachable: true, CanLock: true, CanApprove: true,
		Sessions:  []api.SessionInfo{sess(gh, "alice", api.StateNeedsLogin, 0)},
		Approvals: []Approval{{ID: "a7", Program: "python3", Server: gh, Remember: 10 * time.Minute}}}
	m := menuFor(v, now)
	want := map[string]action{
		"Log in again":       {kind: actLogin, server: gh, account: "alice"},
		"Log out":            {kind: actLogout, server: gh, account: "alice"},
		"Log out and revoke": {kind: actLogoutRevoke, server: gh, account: "alice"},
		"Allow once":         {kind: actApprove, approval: "a7", decision: AllowOnce},
		"Allow for 10 min":   {kind: actApprove, approval: "a7", decision: AllowRemember},
		"Deny":               {kind: actApprove, approval: "a7", decision: Deny},
		"Lock":               {kind: actLock},
		"Open config":        {kind: actOpenConfig},
		"Open log":           {kind: actOpenLog},
		"Quit":               {kind: actQuit},
	}
	for label, a := range want {
		it := find(m, label)
		if it == nil {
			t.Errorf("no item %q in\n%s", label, strings.Join(flat(m), "\n"))
			continue
		}
		if it.act != a {
			t.Errorf("%q does %+v, want %+v", label, it.act, a)
		}
	}
	if it := find(m, "python3 asks for mcp.github.example/mcp (alice)"); it != nil {
		t.Errorf("approval names an account it does not have")
	}
	if it := find(m, "Start agent"); it != nil {
		t.Error("Start agent offered while the agent answers")
	}
	if it := find(menuFor(view{}, now), "Start agent"); it == nil || it.act.kind != actStartAgent {
		t.Errorf("unreachable menu: Start agent = %+v", it)
	}
}

func TestStateLabel(t *testing.T) {
	tests := []struct {
		s    api.SessionInfo
		want string
	}{
		{api.SessionInfo{State: api.StateReady, ExpiresAt: now.Add(42 * time.Minute)}, "valid 42 min"},
		{api.SessionInfo{State: api.StateReady, ExpiresAt: now.Add(30 * time.Second)}, "valid <1 min"},
		{api.SessionInfo{State: api.StateReady, ExpiresAt: now.Add(12 * time.Hour)}, "valid 12 h"},
		{api.SessionInfo{State: api.StateReady, ExpiresAt: now.Add(time.Hour)}, "valid 1 h"},
		{api.SessionInfo{State: api.StateReady}, "valid, no expiry given"},
		{api.SessionInfo{State: api.StateReady, ExpiresAt: now.Add(-time.Second)}, "expired"},
		{api.SessionInfo{State: api.StateReady, ExpiresAt: now.Add(-time.Second), HasRefresh: true}, "expired, refreshes on use"},
		{api.SessionInfo{State: api.StateRefreshing}, "refreshing"},
		{api.SessionInfo{State: api.StateAuthorizing}, "signing in…"},
		{api.SessionInfo{State: api.StateNeedsLogin, Error: "refresh token rejected"}, "needs login"},
		{api.SessionInfo{State: api.StateError, Error: strings.Repeat("x", 100)}, "error: " + strings.Repeat("x", 59) + "…"},
		{api.SessionInfo{State: api.StateError, Error: "line one\nline two"}, "error: line one line two"},
	}
	for _, tc := range tests {
		if got := stateLabel(tc.s, now); got != tc.want {
			t.Errorf("stateLabel(%s, %v) = %q, want %q", tc.s.State, tc.s.ExpiresAt.Sub(now), got, tc.want)
		}
	}
}

func TestMenuSortsSessions(t *testing.T) {
	a := sess("https://b.example/mcp", "", api.StateReady, time.Hour)
	a.Name = "alpha"
	b := sess("https://a.example/mcp", "zed", api.StateReady, time.Hour)
	c := sess("https://a.example/mcp", "amy", api.StateReady, time.Hour)
	want := flat(menuFor(view{Reachable: true, Sessions: []api.SessionInfo{a, c, b}}, now))
	for _, order := range [][]api.SessionInfo{{b, c, a}, {c, a, b}, {a, b, c}} {
		if got := flat(menuFor(view{Reachable: true, Sessions: order}, now)); !slices.Equal(got, want) {
			t.Errorf("order depends on the agent's:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if want[2] != "a.example/mcp (amy): valid 1 h" || want[6] != "a.example/mcp (zed): valid 1 h" || want[10] != "alpha: valid 1 h" {
		t.Errorf("order:\n%s", strings.Join(want, "\n"))
	}
}

func TestShapeOf(t *testing.T) {
	v := view{Reachable: true, Sessions: []api.SessionInfo{sess("https://a.example/", "", api.StateReady, time.Hour)}}
	a := menuFor(v, now)
	b := menuFor(v, now.Add(10*time.Minute))
	if shapeOf(a) != shapeOf(b) {
		t.Error("time passing changed the menu's shape; labels alone should change")
	}
	if slices.Equal(flat(a), flat(b)) {
		t.Error("time passing did not change the labels")
	}
	v.Sessions = append(v.Sessions, sess("https://b.example/", "", api.StateReady, time.Hour))
	if shapeOf(menuFor(v, now)) == shapeOf(a) {
		t.Error("a new session did not change the shape")
	}
}

// TestMenuShowsGrant: a session that signs in without a browser says
// which grant it uses; a browser session's label is unchanged.
func TestMenuShowsGrant(t *testing.T) {
	cc := sess("https://a.example/mcp", "", api.StateReady, time.Hour)
	cc.Grant = api.GrantClientCredentials
	wif := sess("https://b.example/mcp", "", api.StateReady, time.Hour)
	wif.Grant = api.GrantJWTBearer
	br := sess("https://c.example/mcp", "", api.StateReady, time.Hour)
	m := menuFor(view{Reachable: true, Sessions: []api.SessionInfo{cc, wif, br}}, now)
	for _, label := range []string{"a.example/mcp: valid 1 h · client credentials", "b.example/mcp: valid 1 h · workload identity", "c.example/mcp: valid 1 h"} {
		if find(m, label) == nil {
			t.Errorf("no item %q in:\n%s", label, strings.Join(flat(m), "\n"))
		}
	}
	if it := find(m, "a.example/mcp: valid 1 h · client credentials"); it != nil && !strings.Contains(it.tooltip, "client_credentials grant") {
		t.Errorf("tooltip %q does not name the grant", it.tooltip)
	}
}

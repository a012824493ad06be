//go:build !(darwin && !cgo)

package tray

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"fyne.io/systray"
	"github.com/godbus/dbus/v5"

	"github.com/mcpkey/mcpkey/api"
	"github.com/mcpkey/mcpkey/internal/userdirs"
	"github.com/mcpkey/mcpkey/ipc"
)

// Run shows the tray icon until ctx ends or the user picks Quit. It must be
// called on the main goroutine (macOS requires it) and at most once per
// process (fyne.io/systray has one global tray).
func Run(ctx context.Context, c *ipc.Client, opts Options) (err error) {
	if err := checkHost(); err != nil {
		return err
	}
	t := newTray(client{c}, opts)
	if t.startAgent == nil {
		t.startAgent = func(ctx context.Context) error {
			_, _, err := ipc.StartAgent(ctx, ipc.StartOptions{Path: c.Path})
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !opts.NoNotifications {
		if n, err := dialNotifier(newLimiter(t.now), t.log); err != nil {
			t.log.Info("no desktop notifications", "err", err)
		} else {
			t.notifier = n
			defer n.Close()
		}
	}
	// fyne.io/systray's Quit closes a nil connection when the bus went
	// away between checkHost and its own dial (fyne-io/systray#37): keep
	// that panic from taking the agent down with the tray.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tray: %v", r)
		}
	}()
	stop := context.AfterFunc(ctx, systray.Quit)
	defer stop()
	var wg sync.WaitGroup
	systray.SetTitle("mcpkey") // before Run: the item's Id is the title at export time
	systray.Run(func() {
		t.r = &renderer{do: func(a action) { t.act(ctx, a) }}
		t.render()
		wg.Go(func() { t.loop(ctx) })
		wg.Go(func() { t.r.settle(ctx) })
	}, nil)
	cancel()
	wg.Wait()
	return nil
}

// checkHost reports ErrNoHost when fyne.io/systray would find no bus (it
// logs, then panics in Quit).
func checkHost() error {
	switch runtime.GOOS {
	case "windows", "darwin":
		return nil
	}
	conn, err := dbus.SessionBusPrivateNoAutoStartup()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoHost, err)
	}
	defer conn.Close()
	if err := conn.Auth(nil); err != nil {
		return fmt.Errorf("%w: %w", ErrNoHost, err)
	}
	if err := conn.Hello(); err != nil {
		return fmt.Errorf("%w: %w", ErrNoHost, err)
	}
	return nil
}

// tray is the controller: it follows the agent, renders the menu and runs
// the actions.
type tray struct {
	api        agentAPI
	log        *slog.Logger
	now        func() time.Time
	configPath string
	logPath    string
	startAgent func(ctx context.Context) error
	openFile   func(ctx context.Context, path string) error
	notifier   *notifier // nil: no notifications
	r          *renderer

	kick chan struct{} // wakes the loop: refresh, or reconnect now

	// mu guards v, approvals and logins.
	mu sync.Mutex
	v  view
	// approvals are the ids already notified.
	approvals map[string]bool
	// logins are the logins this tray started and still waits for.
	logins map[string]bool
}

func newTray(api agentAPI, opts Options) *tray {
	t := &tray{api: api, log: opts.Logger, now: opts.Now, configPath: opts.ConfigPath, logPath: opts.LogPath,
		startAgent: opts.StartAgent, openFile: opts.OpenFile, kick: make(chan struct{}, 1),
		approvals: map[string]bool{}, logins: map[string]bool{}}
	t.log = cmp.Or(t.log, slog.New(slog.DiscardHandler))
	if t.now == nil {
		t.now = time.Now
	}
	if t.openFile == nil {
		t.openFile = openFile
	}
	return t
}

// render shows the current view.
func (t *tray) render() {
	t.mu.Lock()
	v := t.v
	t.mu.Unlock()
	t.r.apply(menuFor(v, t.now()), iconFor(v), tooltipFor(v))
}

func (t *tray) wake() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// loop follows the agent's events and refreshes the view after each burst
// of them. When the agent goes away the menu says so and the loop
// reconnects with backoff (at once after "Start agent").
func (t *tray) loop(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		events, err := t.api.Watch(ctx)
		if err != nil {
			t.unreachable(err)
			timer := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
			case <-timer.C:
			case <-t.kick:
			}
			timer.Stop()
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		t.refresh(ctx)
		t.follow(ctx, events)
	}
}

// follow handles events until the subscription ends. A ticker re-renders
// the remaining lifetimes; it does not call the agent.
func (t *tray) follow(ctx context.Context, events <-chan api.Event) {
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.render()
		case <-t.kick:
			t.refresh(ctx)
		case ev, ok := <-events:
			if !ok {
				return
			}
			t.event(ctx, ev)
		drain: // one refresh per burst
			for {
				select {
				case ev, ok := <-events:
					if !ok {
						t.refresh(ctx)
						return
					}
					t.event(ctx, ev)
				default:
					break drain
				}
			}
			t.refresh(ctx)
		}
	}
}

func (t *tray) unreachable(err error) {
	t.mu.Lock()
	changed := t.v.Reachable || t.v.Err != err.Error()
	t.v = view{Err: err.Error()}
	t.mu.Unlock()
	if changed {
		t.log.Info("agent unreachable", "err", err)
	}
	t.render()
}

// refresh fetches the agent's state and renders it; it notifies approvals
// it has not seen before.
func (t *tray) refresh(ctx context.Context) {
	// rctx bounds the calls; ctx, which outlives them, goes to the
	// notifications' actions.
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := t.api.Status(rctx)
	if err != nil {
		if rctx.Err() == nil {
			t.unreachable(err)
		}
		return
	}
	v := view{Reachable: true, Status: st}
	v.CanLock, v.CanApprove = t.api.Capable(rctx)
	if v.Sessions, err = t.api.Sessions(rctx); err != nil && !errors.Is(err, api.ErrLocked) {
		t.log.Info("list sessions", "err", err)
	}
	if v.CanApprove {
		if v.Approvals, err = t.api.Approvals(rctx); err != nil {
			t.log.Info("list approvals", "err", err)
		}
	}
	var fresh []Approval
	t.mu.Lock()
	t.v = v
	seen := map[string]bool{}
	for _, a := range v.Approvals {
		seen[a.ID] = true
		if !t.approvals[a.ID] {
			fresh = append(fresh, a)
		}
	}
	t.approvals = seen
	t.mu.Unlock()
	t.render()
	for _, a := range fresh {
		t.notifyApproval(ctx, a)
	}
}

// event turns an agent event into a notification.
func (t *tray) event(ctx context.Context, ev api.Event) {
	t.log.Debug("event", "kind", ev.Kind, "server", ev.Server)
	name := t.nameOf(ev.Server)
	switch ev.Kind {
	case api.EventLoginNeeded:
		login := func(string) { t.act(ctx, action{kind: actLogin, server: ev.Server, account: ev.Account}) }
		t.notify(ctx, notification{Key: "login-needed\x00" + ev.Server + "\x00" + ev.Account,
			Summary: "Login needed for " + name, Body: ev.Message,
			Actions:  []notifyAction{{"default", "Log in"}, {"login", "Log in"}},
			OnAction: login})
	case api.EventLoginFinished:
		if ev.Error != "" {
			t.notify(ctx, notification{Key: "login-failed\x00" + ev.Server + "\x00" + ev.Account,
				Summary: "Sign-in to " + name + " failed", Body: clip(ev.Error, 200)})
			return
		}
		t.notify(ctx, notification{Key: "signed-in\x00" + ev.Server + "\x00" + ev.Account,
			Summary: "Signed in to " + name})
	}
}

func (t *tray) notifyApproval(ctx context.Context, a Approval) {
	item := approvalItem(a)
	var actions []notifyAction
	if a.Via == "" {
		actions = append(actions, notifyAction{"allow", "Allow once"})
	}
	if a.Remember > 0 && a.Via == "" {
		actions = append(actions, notifyAction{"remember", "Allow for " + humanDuration(a.Remember)})
	}
	actions = append(actions, notifyAction{"deny", "Deny"})
	t.notify(ctx, notification{Key: "approval\x00" + a.ID, Summary: item.label, Body: a.Server, Urgent: true,
		Actions: actions, OnAction: func(key string) {
			d, ok := map[string]Decision{"allow": AllowOnce, "remember": AllowRemember, "deny": Deny}[key]
			if ok {
				t.act(ctx, action{kind: actApprove, approval: a.ID, decision: d})
			}
		}})
}

func (t *tray) notify(ctx context.Context, n notification) {
	if t.notifier == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		t.notifier.Notify(ctx, n)
	}()
}

// nameOf is what the menu calls server.
func (t *tray) nameOf(server string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.v.Sessions {
		if s.Server == server {
			return serverName(s)
		}
	}
	return hostOf(server)
}

// act runs a. It returns at once; the work runs on its own goroutine, so a
// click is never dropped because an earlier one is still running.
func (t *tray) act(ctx context.Context, a action) {
	if a.kind == actQuit {
		systray.Quit()
		return
	}
	go func() {
		if err := t.run(ctx, a); err != nil && ctx.Err() == nil {
			t.log.Warn("tray action failed", "action", a.kind, "server", a.server, "err", err)
			t.notify(ctx, notification{Key: "error\x00" + err.Error(), Summary: "mcpkey", Body: err.Error()})
		}
		t.wake()
	}()
}

func (t *tray) run(ctx context.Context, a action) error {
	switch a.kind {
	case actLogin:
		// The agent opens the browser, as for `mcpkey login`.
		key := a.server + "\x00" + a.account
		t.mu.Lock()
		busy := t.logins[key]
		t.logins[key] = true
		t.mu.Unlock()
		if busy {
			return nil
		}
		defer func() { t.mu.Lock(); delete(t.logins, key); t.mu.Unlock() }()
		if _, err := t.api.Login(ctx, api.LoginRequest{Server: a.server, Account: a.account}, nil); err != nil {
			return fmt.Errorf("log in to %s: %w", hostOf(a.server), err)
		}
	case actLogout, actLogoutRevoke:
		if _, err := t.api.Logout(ctx, api.LogoutRequest{Server: a.server, Account: a.account, KeepRemote: a.kind == actLogout}); err != nil {
			return fmt.Errorf("log out of %s: %w", hostOf(a.server), err)
		}
	case actApprove:
		return t.api.Answer(ctx, a.approval, a.decision)
	case actLock:
		return t.api.Lock(ctx)
	case actUnlock:
		return t.api.Unlock(ctx)
	case actStartAgent:
		if err := t.startAgent(ctx); err != nil {
			return fmt.Errorf("start agent: %w", err)
		}
	case actOpenConfig:
		return t.open(ctx, t.configFile())
	case actOpenLog:
		return t.open(ctx, t.logFile())
	}
	return nil
}

func (t *tray) configFile() string {
	if t.configPath != "" {
		return t.configPath
	}
	t.mu.Lock()
	p := t.v.Status.ConfigPath
	t.mu.Unlock()
	if p == "" {
		p, _ = userdirs.ConfigPath()
	}
	return p
}

func (t *tray) logFile() string {
	if t.logPath != "" {
		return t.logPath
	}
	dir, err := userdirs.StateDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "agent.log")
}

// open opens path, or its directory when the file does not exist yet.
func (t *tray) open(ctx context.Context, path string) error {
	if path == "" {
		return errors.New("no such file")
	}
	if _, err := os.Stat(path); err != nil {
		dir := filepath.Dir(path)
		if _, derr := os.Stat(dir); derr != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		path = dir
	}
	return t.openFile(ctx, path)
}

// openFile opens path with the desktop's handler: an argument vector, no
// shell; the child is reaped in the background.
func openFile(ctx context.Context, path string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", "--", path)
	case "windows":
		cmd = exec.Command("explorer", path)
	default:
		cmd = exec.Command("xdg-open", path)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	go cmd.Wait()
	return nil
}

// renderer puts items into fyne.io/systray. When only labels, tooltips or
// enabled states change, items are updated in place; when the shape
// changes, the menu is rebuilt.
type renderer struct {
	do func(action)

	// mu guards everything below.
	mu    sync.Mutex
	shape string
	nodes []*node
	acts  map[string]action // by item key: what a click does now
	icon  iconState
	tip   string
	init  bool
}

// settle works around fyne.io/systray dropping a SetIcon or SetTooltip
// made while it is still exporting the item on D-Bus, which it does
// concurrently with onReady: until the exported ToolTip is the one last
// set, it sets both again (tooltip first, so a current tooltip means the
// icon that followed it was applied too). It gives up after 10 s.
func (r *renderer) settle(ctx context.Context) {
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" {
		return
	}
	conn, err := dbus.SessionBus() // the shared connection systray exports on
	if err != nil || len(conn.Names()) == 0 {
		return
	}
	obj := conn.Object(conn.Names()[0], "/StatusNotifierItem")
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for range 100 {
		var tt struct {
			Icon   string
			Images []struct {
				W, H int32
				Pix  []byte
			}
			Title, Body string
		}
		v, err := obj.GetProperty("org.kde.StatusNotifierItem.ToolTip")
		r.mu.Lock()
		if err == nil && v.Store(&tt) == nil && tt.Title == r.tip {
			r.mu.Unlock()
			return
		}
		if err == nil && r.init {
			systray.SetTooltip(r.tip)
			setIcon(r.icon)
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

type node struct {
	mi   *systray.MenuItem
	kids []*node
	it   item
}

func (r *renderer) apply(items []item, icon iconState, tooltip string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.init || icon != r.icon || tooltip != r.tip {
		// Tooltip first: settle relies on it.
		systray.SetTooltip(tooltip)
		setIcon(icon)
	}
	r.icon, r.tip, r.init = icon, tooltip, true
	r.acts = map[string]action{}
	collect(items, r.acts)
	if s := shapeOf(items); s != r.shape {
		systray.ResetMenu()
		r.nodes = r.build(nil, items)
		r.shape = s
		return
	}
	r.update(r.nodes, items)
}

func collect(items []item, into map[string]action) {
	for _, it := range items {
		into[it.key] = it.act
		collect(it.kids, into)
	}
}

func (r *renderer) build(parent *systray.MenuItem, items []item) []*node {
	var out []*node
	for _, it := range items {
		if it.sep {
			if parent == nil {
				systray.AddSeparator()
			} else {
				parent.AddSeparator()
			}
			out = append(out, &node{it: it})
			continue
		}
		var mi *systray.MenuItem
		if parent == nil {
			mi = systray.AddMenuItem(it.label, it.tooltip)
		} else {
			mi = parent.AddSubMenuItem(it.label, it.tooltip)
		}
		if it.disabled {
			mi.Disable()
		}
		n := &node{mi: mi, it: it}
		n.kids = r.build(mi, it.kids)
		// fyne.io/systray drops a click unless someone is receiving at
		// that instant: one receiver per item, for the item's lifetime
		// (Remove closes the channel).
		key := it.key
		go func() {
			for range mi.ClickedCh {
				r.mu.Lock()
				a := r.acts[key]
				r.mu.Unlock()
				if a.kind != actNone {
					r.do(a)
				}
			}
		}()
		out = append(out, n)
	}
	return out
}

func (r *renderer) update(nodes []*node, items []item) {
	for i, it := range items {
		n := nodes[i]
		if n.mi != nil {
			if it.label != n.it.label {
				n.mi.SetTitle(it.label)
			}
			if it.tooltip != n.it.tooltip {
				n.mi.SetTooltip(it.tooltip)
			}
			if it.disabled != n.it.disabled {
				if it.disabled {
					n.mi.Disable()
				} else {
					n.mi.Enable()
				}
			}
		}
		n.it = it
		r.update(n.kids, it.kids)
	}
}

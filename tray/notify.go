package tray

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// Desktop notifications through the freedesktop Notifications interface
// (https://specifications.freedesktop.org/notification-spec/latest/), on a
// private session-bus connection of their own: fyne.io/systray's shared
// connection ends its watcher loop on any signal it does not expect, and
// ActionInvoked would be one.

const (
	notifyName  = "org.freedesktop.Notifications"
	notifyPath  = dbus.ObjectPath("/org/freedesktop/Notifications")
	notifyIface = "org.freedesktop.Notifications"
)

// notification is one desktop notification.
type notification struct {
	// Key groups notifications for rate limiting and replacement: a newer
	// notification with the same key replaces the older one on screen.
	Key           string
	Summary, Body string
	// Actions are (key, label) pairs; the key "default" is the action the
	// server runs when the notification itself is clicked.
	Actions []notifyAction
	// Urgent asks for critical urgency (approvals, which time out).
	Urgent bool
	// OnAction is called, on the notifier's goroutine, with the key of the
	// action the user chose.
	OnAction func(key string)
}

type notifyAction struct{ Key, Label string }

// notifier posts notifications; it is safe for concurrent use.
type notifier struct {
	conn *dbus.Conn
	log  *slog.Logger
	done chan struct{}

	// mu guards lim, handlers and shown.
	mu  sync.Mutex
	lim *limiter
	// handlers are the OnAction callbacks by notification id.
	handlers map[uint32]func(string)
	// shown is the last notification id per key (replaces_id).
	shown map[string]uint32
}

// dialNotifier connects to the session bus for notifications.
func dialNotifier(lim *limiter, log *slog.Logger) (*notifier, error) {
	conn, err := dbus.SessionBusPrivateNoAutoStartup()
	if err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	if err := conn.Auth(nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("notifications: %w", err)
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("notifications: %w", err)
	}
	if err := conn.AddMatchSignal(dbus.WithMatchInterface(notifyIface), dbus.WithMatchObjectPath(notifyPath)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("notifications: %w", err)
	}
	n := &notifier{conn: conn, log: log, lim: lim, done: make(chan struct{}),
		handlers: map[uint32]func(string){}, shown: map[string]uint32{}}
	sigs := make(chan *dbus.Signal, 16)
	conn.Signal(sigs)
	go n.signals(sigs)
	return n, nil
}

// Close ends the connection.
func (n *notifier) Close() {
	n.conn.Close()
	<-n.done
}

// Notify shows nt unless the rate limit holds it back, and reports whether
// it was shown. Notifications held back are counted and mentioned in the
// next one shown ("and 3 more").
func (n *notifier) Notify(ctx context.Context, nt notification) bool {
	n.mu.Lock()
	ok, more := n.lim.allow(nt.Key)
	replaces := n.shown[nt.Key]
	n.mu.Unlock()
	if !ok {
		n.log.Debug("notification held back", "key", nt.Key)
		return false
	}
	body := nt.Body
	if more > 0 {
		body += fmt.Sprintf("\n(and %d more: see the mcpkey menu)", more)
	}
	var actions []string
	for _, a := range nt.Actions {
		actions = append(actions, a.Key, a.Label)
	}
	urgency := byte(1)
	if nt.Urgent {
		urgency = 2
	}
	hints := map[string]dbus.Variant{
		"urgency":       dbus.MakeVariant(urgency),
		"desktop-entry": dbus.MakeVariant("mcpkey"),
	}
	var id uint32
	err := n.conn.Object(notifyName, notifyPath).CallWithContext(ctx, notifyIface+".Notify", 0,
		"mcpkey", replaces, "", nt.Summary, body, actions, hints, int32(-1)).Store(&id)
	if err != nil {
		n.log.Info("notification not shown", "err", err)
		return false
	}
	n.mu.Lock()
	if replaces != 0 && replaces != id {
		delete(n.handlers, replaces)
	}
	n.shown[nt.Key] = id
	if nt.OnAction != nil {
		n.handlers[id] = nt.OnAction
	}
	n.mu.Unlock()
	return true
}

// signals dispatches ActionInvoked and forgets closed notifications. Only
// the current owner of org.freedesktop.Notifications is believed: any
// program on the bus can emit a signal.
func (n *notifier) signals(sigs <-chan *dbus.Signal) {
	defer close(n.done)
	for sig := range sigs {
		switch sig.Name {
		case notifyIface + ".ActionInvoked":
			var id uint32
			var key string
			if dbus.Store(sig.Body, &id, &key) != nil || !n.fromServer(sig.Sender) {
				continue
			}
			n.mu.Lock()
			h := n.handlers[id]
			n.mu.Unlock()
			if h != nil {
				h(key)
			}
		case notifyIface + ".NotificationClosed":
			var id, reason uint32
			if dbus.Store(sig.Body, &id, &reason) != nil || !n.fromServer(sig.Sender) {
				continue
			}
			n.mu.Lock()
			delete(n.handlers, id)
			for k, v := range n.shown {
				if v == id {
					delete(n.shown, k)
				}
			}
			n.mu.Unlock()
		}
	}
}

func (n *notifier) fromServer(sender string) bool {
	var owner string
	err := n.conn.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, notifyName).Store(&owner)
	return err == nil && owner == sender
}

// limiter keeps notifications from storming: at most one per key per
// PerKey, and at most Burst in any Window overall. It is not safe for
// concurrent use.
type limiter struct {
	Now    func() time.Time
	PerKey time.Duration
	Burst  int
	Window time.Duration

	last   map[string]time.Time
	recent []time.Time
	held   int
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{Now: now, PerKey: time.Minute, Burst: 3, Window: 10 * time.Second, last: map[string]time.Time{}}
}

// allow reports whether a notification for key may be shown now and, if
// so, how many others were held back by the overall budget since the last
// one shown (repeats of a key are dropped without a count).
func (l *limiter) allow(key string) (ok bool, held int) {
	now := l.Now()
	if t, seen := l.last[key]; seen && now.Sub(t) < l.PerKey {
		return false, 0 // a repeat of what is on screen: not worth a mention
	}
	keep := l.recent[:0]
	for _, t := range l.recent {
		if now.Sub(t) < l.Window {
			keep = append(keep, t)
		}
	}
	l.recent = keep
	if len(l.recent) >= l.Burst {
		l.held++
		return false, 0
	}
	l.recent = append(l.recent, now)
	l.last[key] = now
	held, l.held = l.held, 0
	return true, held
}

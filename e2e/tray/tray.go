// Package tray is the D-Bus side of the tray's end-to-end tests: a private
// session bus (dbus-daemon with a config of its own), a fake
// org.kde.StatusNotifierWatcher that receives the tray's registration, a
// reader for the item's properties and its com.canonical.dbusmenu menu, and
// a fake org.freedesktop.Notifications server that records notifications
// and invokes their actions.
//
// References:
//   - StatusNotifierItem: https://www.freedesktop.org/wiki/Specifications/StatusNotifierItem/
//   - dbusmenu: https://github.com/AyatanaIndicators/libdbusmenu/blob/master/libdbusmenu-glib/dbus-menu.xml
//   - Notifications: https://specifications.freedesktop.org/notification-spec/latest/
package tray

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	_ "image/png" // icons
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

// Bus is a private session bus. Nothing is activatable on it: only what a
// test starts is there.
type Bus struct {
	// Address is the value for DBUS_SESSION_BUS_ADDRESS.
	Address string
}

// StartBus starts dbus-daemon with a private config and stops it at
// cleanup. It returns an error when dbus-daemon is missing or does not
// start.
func StartBus(t testing.TB) (*Bus, error) {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mkbus")
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, busConfig, dir), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(daemon, "--config-file="+conf, "--nofork", "--nopidfile", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case a := <-addr:
		if a == "" {
			return nil, fmt.Errorf("dbus-daemon printed no address")
		}
		return &Bus{Address: a}, nil
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("dbus-daemon printed no address within 10 s")
	}
}

// Conn opens a connection of the test's own to the bus.
func (b *Bus) Conn(t testing.TB) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Dial(b.Address)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Auth(nil); err != nil {
		t.Fatal(err)
	}
	if err := conn.Hello(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Watcher is a fake org.kde.StatusNotifierWatcher.
type Watcher struct {
	// Registered receives the bus name of each item that registers.
	Registered chan string
}

type watcher struct{ w *Watcher }

func (w watcher) RegisterStatusNotifierItem(sender dbus.Sender, service string) *dbus.Error {
	// The tray passes its object path; the sender is its bus name.
	w.w.Registered <- string(sender)
	return nil
}

func (w watcher) RegisterStatusNotifierHost(service string) *dbus.Error { return nil }

// StartWatcher exports the watcher on conn and takes its well-known name.
func StartWatcher(t testing.TB, conn *dbus.Conn) *Watcher {
	t.Helper()
	w := &Watcher{Registered: make(chan string, 8)}
	if err := conn.Export(watcher{w}, "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher"); err != nil {
		t.Fatal(err)
	}
	if r, err := conn.RequestName("org.kde.StatusNotifierWatcher", dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.kde.StatusNotifierWatcher: %v %v", r, err)
	}
	return w
}

// Wait returns the next registered item's bus name.
func (w *Watcher) Wait(ctx context.Context) (string, error) {
	select {
	case s := <-w.Registered:
		return s, nil
	case <-ctx.Done():
		return "", fmt.Errorf("no StatusNotifierItem registered: %w", ctx.Err())
	}
}

// Item reads a registered StatusNotifierItem and its menu.
type Item struct {
	conn *dbus.Conn
	Name string
}

// NewItem is the item owned by the bus name name.
func NewItem(conn *dbus.Conn, name string) *Item { return &Item{conn: conn, Name: name} }

func (it *Item) prop(name string, out any) error {
	v, err := it.conn.Object(it.Name, "/StatusNotifierItem").GetProperty("org.kde.StatusNotifierItem." + name)
	if err != nil {
		return err
	}
	return v.Store(out)
}

// Title is the item's Title property.
func (it *Item) Title() (string, error) {
	var s string
	return s, it.prop("Title", &s)
}

// ToolTip is the title part of the item's ToolTip property (sa(iiay)ss).
func (it *Item) ToolTip() (string, error) {
	var tt struct {
		Icon   string
		Images []struct {
			W, H int32
			Pix  []byte
		}
		Title, Body string
	}
	err := it.prop("ToolTip", &tt)
	return tt.Title, err
}

// Icon is the item's IconPixmap: ARGB32 in network byte order.
type Icon struct {
	W, H int32
	Pix  []byte
}

// Icon returns the first IconPixmap.
func (it *Item) Icon() (Icon, error) {
	var px []Icon
	if err := it.prop("IconPixmap", &px); err != nil {
		return Icon{}, err
	}
	if len(px) == 0 {
		return Icon{}, fmt.Errorf("no IconPixmap")
	}
	return px[0], nil
}

// Prop reads any property of the item, such as Status or Menu.
func (it *Item) Prop(name string) (dbus.Variant, error) {
	return it.conn.Object(it.Name, "/StatusNotifierItem").GetProperty("org.kde.StatusNotifierItem." + name)
}

// IconFromPNG is what a tray should export for a PNG: ARGB32, big-endian,
// as StatusNotifierItem's IconPixmap specifies. It reproduces
// fyne.io/systray's conversion (the low byte of each 16-bit channel).
func IconFromPNG(b []byte) (Icon, error) {
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return Icon{}, err
	}
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	pix := make([]byte, 0, w*h*4)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, b, a := img.At(x, y).RGBA()
			pix = append(pix, byte(a), byte(r), byte(g), byte(b))
		}
	}
	return Icon{W: int32(w), H: int32(h), Pix: pix}, nil
}

// MenuItem is one dbusmenu entry.
type MenuItem struct {
	ID        int32
	Label     string
	Enabled   bool
	Visible   bool
	Separator bool
	Kids      []MenuItem
}

type layout struct {
	ID    int32
	Props map[string]dbus.Variant
	Kids  []dbus.Variant
}

func decode(l layout) MenuItem {
	m := MenuItem{ID: l.ID, Enabled: true, Visible: true}
	if v, ok := l.Props["label"]; ok {
		m.Label, _ = v.Value().(string)
	}
	if v, ok := l.Props["enabled"]; ok {
		m.Enabled, _ = v.Value().(bool)
	}
	if v, ok := l.Props["visible"]; ok {
		m.Visible, _ = v.Value().(bool)
	}
	if v, ok := l.Props["type"]; ok {
		m.Separator = v.Value() == "separator"
	}
	for _, k := range l.Kids {
		var kl layout
		if err := dbus.Store([]any{k.Value()}, &kl); err == nil {
			m.Kids = append(m.Kids, decode(kl))
		}
	}
	return m
}

// Menu reads the whole menu with GetLayout(0, -1).
func (it *Item) Menu() ([]MenuItem, error) {
	var rev uint32
	var l layout
	err := it.conn.Object(it.Name, "/StatusNotifierItem/menu").Call("com.canonical.dbusmenu.GetLayout", 0,
		int32(0), int32(-1), []string{}).Store(&rev, &l)
	if err != nil {
		return nil, err
	}
	return decode(l).Kids, nil
}

// Click sends Event(id, "clicked").
func (it *Item) Click(id int32) error {
	return it.conn.Object(it.Name, "/StatusNotifierItem/menu").Call("com.canonical.dbusmenu.Event", 0,
		id, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix())).Err
}

// Lines renders visible items as lines: "label", "  kid", "---"; disabled
// items end in " [x]".
func Lines(items []MenuItem) []string {
	var out []string
	var walk func([]MenuItem, string)
	walk = func(items []MenuItem, indent string) {
		for _, m := range items {
			if !m.Visible {
				continue
			}
			if m.Separator {
				out = append(out, indent+"---")
				continue
			}
			l := indent + m.Label
			if !m.Enabled {
				l += " [x]"
			}
			out = append(out, l)
			walk(m.Kids, indent+"  ")
		}
	}
	walk(items, "")
	return out
}

// Find returns the first visible item whose label satisfies match, at any
// depth.
func Find(items []MenuItem, match func(label string) bool) (MenuItem, bool) {
	for _, m := range items {
		if !m.Visible {
			continue
		}
		if !m.Separator && match(m.Label) {
			return m, true
		}
		if k, ok := Find(m.Kids, match); ok {
			return k, true
		}
	}
	return MenuItem{}, false
}

// Notification is one Notify call received by the fake server.
type Notification struct {
	ID       uint32
	AppName  string
	Replaces uint32
	Summary  string
	Body     string
	Actions  []string // key, label, key, label, ...
	Hints    map[string]dbus.Variant
}

// Notifications is a fake org.freedesktop.Notifications server.
type Notifications struct {
	conn *dbus.Conn

	// mu guards got and next.
	mu   sync.Mutex
	got  []Notification
	next uint32
}

type notifServer struct{ n *Notifications }

func (s notifServer) Notify(app string, replaces uint32, icon, summary, body string, actions []string,
	hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	id := replaces
	if id == 0 {
		s.n.next++
		id = s.n.next
	}
	s.n.got = append(s.n.got, Notification{ID: id, AppName: app, Replaces: replaces, Summary: summary, Body: body, Actions: actions, Hints: hints})
	return id, nil
}

func (s notifServer) GetCapabilities() ([]string, *dbus.Error) {
	return []string{"actions", "body"}, nil
}

func (s notifServer) CloseNotification(id uint32) *dbus.Error { return nil }

func (s notifServer) GetServerInformation() (string, string, string, string, *dbus.Error) {
	return "fake", "mcpkey-e2e", "1", "1.2", nil
}

// StartNotifications exports the server on conn and takes its name.
func StartNotifications(t testing.TB, conn *dbus.Conn) *Notifications {
	t.Helper()
	n := &Notifications{conn: conn}
	if err := conn.Export(notifServer{n}, "/org/freedesktop/Notifications", "org.freedesktop.Notifications"); err != nil {
		t.Fatal(err)
	}
	if r, err := conn.RequestName("org.freedesktop.Notifications", dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.Notifications: %v %v", r, err)
	}
	return n
}

// All returns the notifications received so far.
func (n *Notifications) All() []Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Notification(nil), n.got...)
}

// Find returns the last notification whose summary contains s.
func (n *Notifications) Find(s string) (Notification, bool) {
	all := n.All()
	for i := len(all) - 1; i >= 0; i-- {
		if strings.Contains(all[i].Summary, s) {
			return all[i], true
		}
	}
	return Notification{}, false
}

// Invoke emits ActionInvoked(id, key), as a server does when the user
// clicks an action (key "default": the notification itself).
func (n *Notifications) Invoke(id uint32, key string) error {
	return n.conn.Emit("/org/freedesktop/Notifications", "org.freedesktop.Notifications.ActionInvoked", id, key)
}

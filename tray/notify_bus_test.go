package tray

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	trayh "github.com/mcpkey/mcpkey/e2e/tray"
)

// TestNotifierOnBus: the notifier against a fake notification server on a
// private bus: the burst limit holds notifications back and the next one
// mentions them, a repeat replaces the one on screen, actions reach
// OnAction, and an ActionInvoked from anyone but the server is ignored.
func TestNotifierOnBus(t *testing.T) {
	bus, err := trayh.StartBus(t)
	if err != nil {
		t.Skipf("no private D-Bus: %v", err)
	}
	server := trayh.StartNotifications(t, bus.Conn(t))
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", bus.Address)

	clock := now
	lim := newLimiter(func() time.Time { return clock })
	n, err := dialNotifier(lim, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	actions := make(chan string, 4)
	shown := 0
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if n.Notify(ctx, notification{Key: k, Summary: "login needed for " + k,
			Actions: []notifyAction{{"default", "Log in"}}, OnAction: func(key string) { actions <- k + "/" + key }}) {
			shown++
		}
	}
	if got := server.All(); shown != 3 || len(got) != 3 {
		t.Fatalf("shown %d, server got %d; want 3 of a burst of 5", shown, len(got))
	}
	clock = clock.Add(11 * time.Second)
	if !n.Notify(ctx, notification{Key: "f", Summary: "signed in to f"}) {
		t.Fatal("a notification after the window was held back")
	}
	f, _ := server.Find("signed in to f")
	if !strings.Contains(f.Body, "and 2 more") || f.AppName != "mcpkey" {
		t.Errorf("coalesced notification = %+v", f)
	}
	// A repeat of a within the minute is dropped; after it, it replaces a.
	if n.Notify(ctx, notification{Key: "a", Summary: "login needed for a"}) {
		t.Error("a repeat within a minute was shown")
	}
	a, _ := server.Find("login needed for a")
	clock = clock.Add(time.Minute)
	if !n.Notify(ctx, notification{Key: "a", Summary: "login needed for a (again)",
		Actions: []notifyAction{{"default", "Log in"}}, OnAction: func(key string) { actions <- "a2/" + key }}) {
		t.Fatal("a repeat after a minute was held back")
	}
	a2, _ := server.Find("login needed for a (again)")
	if a2.Replaces != a.ID || a2.ID != a.ID {
		t.Errorf("the repeat did not replace the first: %+v vs %+v", a2, a)
	}

	// Only the server's signals count: a stranger's ActionInvoked is
	// ignored, the server's reaches OnAction.
	stranger := bus.Conn(t)
	if err := stranger.Emit("/org/freedesktop/Notifications", "org.freedesktop.Notifications.ActionInvoked", a2.ID, "default"); err != nil {
		t.Fatal(err)
	}
	if err := server.Invoke(a2.ID, "default"); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-actions:
		if got != "a2/default" {
			t.Errorf("action = %q, want a2/default", got)
		}
	case <-ctx.Done():
		t.Fatal("the server's ActionInvoked never reached OnAction")
	}
	select {
	case got := <-actions:
		t.Errorf("a second action arrived (the stranger's?): %q", got)
	case <-time.After(200 * time.Millisecond):
	}
}

package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/godbus/dbus/v5"
)

// D-Bus signals that mean "the screen locked".
const (
	ifaceFreedesktopScreenSaver = "org.freedesktop.ScreenSaver"
	ifaceGnomeScreenSaver       = "org.gnome.ScreenSaver"
	ifaceLogindSession          = "org.freedesktop.login1.Session"
)

// watchScreenLock locks the agent when the screen locks: the screensaver's
// ActiveChanged(true) on the session bus (freedesktop and GNOME names), and
// logind's Session.Lock on the system bus for a session of this user. Either
// bus may be missing; only when neither can be watched is it an error.
// Options.DBusSessionAddress and DBusSystemAddress choose the buses.
func (po *Policy) watchScreenLock(ctx context.Context) (func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	var conns []*dbus.Conn
	var errs []error
	sigs := make(chan *dbus.Signal, 16)

	if sess, err := connectBus(po.opts.DBusSessionAddress, sessionBus); err != nil {
		errs = append(errs, err)
	} else {
		for _, iface := range []string{ifaceFreedesktopScreenSaver, ifaceGnomeScreenSaver} {
			if err := sess.AddMatchSignal(dbus.WithMatchInterface(iface), dbus.WithMatchMember("ActiveChanged")); err != nil {
				errs = append(errs, err)
			}
		}
		sess.Signal(sigs)
		conns = append(conns, sess)
	}
	if sys, err := connectBus(po.opts.DBusSystemAddress, dbus.ConnectSystemBus); err != nil {
		errs = append(errs, err)
	} else if err := sys.AddMatchSignal(dbus.WithMatchInterface(ifaceLogindSession), dbus.WithMatchMember("Lock")); err != nil {
		errs = append(errs, err)
		sys.Close()
	} else {
		sys.Signal(sigs)
		conns = append(conns, sys)
	}
	if len(conns) == 0 {
		cancel()
		return nil, errors.Join(errs...)
	}
	if len(errs) > 0 {
		po.log.Debug("screen lock: some D-Bus signals are not watched", "err", errors.Join(errs...))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-sigs:
				if s != nil && po.isScreenLock(s, conns) {
					po.lockBy("screen locked")
				}
			}
		}
	}()
	return func() {
		cancel()
		for _, c := range conns {
			c.Close()
		}
		<-done
	}, nil
}

func (po *Policy) isScreenLock(s *dbus.Signal, conns []*dbus.Conn) bool {
	switch s.Name {
	case ifaceFreedesktopScreenSaver + ".ActiveChanged", ifaceGnomeScreenSaver + ".ActiveChanged":
		active, ok := false, len(s.Body) == 1
		if ok {
			active, ok = s.Body[0].(bool)
		}
		return ok && active
	case ifaceLogindSession + ".Lock":
		// Only a session of this user: logind's Session.User is (uid, path).
		for _, c := range conns {
			v, err := c.Object("org.freedesktop.login1", s.Path).GetProperty(ifaceLogindSession + ".User")
			if err != nil {
				continue
			}
			if u, ok := v.Value().([]any); ok && len(u) == 2 {
				if uid, ok := u[0].(uint32); ok {
					return int(uid) == os.Getuid()
				}
			}
		}
	}
	return false
}

// sessionBus connects to the session bus named by the environment, never
// autolaunching one (godbus's ConnectSessionBus would start dbus-launch).
func sessionBus(opts ...dbus.ConnOption) (*dbus.Conn, error) {
	addr := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	if addr == "" || addr == "autolaunch:" {
		p := filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "bus")
		if fi, err := os.Stat(p); os.Getenv("XDG_RUNTIME_DIR") == "" || err != nil || fi.Mode().Type() != os.ModeSocket {
			return nil, errors.New("no session bus (DBUS_SESSION_BUS_ADDRESS is unset)")
		}
		addr = "unix:path=" + p
	}
	return dbus.Connect(addr, opts...)
}

// connectBus opens a private connection to address ("" means the default
// bus; "off" means none).
func connectBus(address string, dflt func(...dbus.ConnOption) (*dbus.Conn, error)) (*dbus.Conn, error) {
	switch address {
	case "off":
		return nil, errors.New("disabled")
	case "":
		return dflt()
	}
	return dbus.Connect(address)
}

// Package busguard keeps github.com/99designs/keyring's package init from
// reaching the D-Bus session bus.
//
// keyring's secretservice.go and kwallet.go (linux) call the 2019 godbus
// dbus.SessionBus() from init. With DBUS_SESSION_BUS_ADDRESS set that dials
// the bus in every process that links the package; with it unset godbus runs
// dbus-launch and leaves a stray dbus-daemon behind. mcpkey's CLI commands
// link the same binary and must not pay either.
//
// This package imports only "syscall". Go (≥ 1.21) initialises packages in
// import-path order, each step taking the first package whose imports are all
// initialised, so this package initialises right after syscall: before os,
// and so before keyring and godbus. Its init, unless MCPKEY_KEYRING_DBUS=1 is
// set, points DBUS_SESSION_BUS_ADDRESS at "disabled:" (godbus rejects the
// transport at once, without dialling or spawning) and sets DISABLE_KWALLET=1.
// Package store's init then calls Restore, so the rest of the process and its
// children see the environment as it was. A process that needs Secret Service
// or KWallet re-executes itself with the marker set.
//
// The saved values are package state written once, by init, before main
// runs; they are not a test seam.
package busguard

import "syscall"

// Marker is the environment variable that turns the guard off: with
// MCPKEY_KEYRING_DBUS=1 keyring's init sees the real bus address.
const Marker = "MCPKEY_KEYRING_DBUS"

const (
	addrVar      = "DBUS_SESSION_BUS_ADDRESS"
	kwalletVar   = "DISABLE_KWALLET"
	disabledAddr = "disabled:"
)

// saved is what init found, for Restore. Written only by init and Restore,
// which both run during package initialisation (single goroutine).
var saved struct {
	active         bool // the guard changed the environment at init
	restored       bool
	addr, kwallet  string
	addrSet, kwSet bool
}

// guard disables D-Bus for the rest of package initialisation. It is called
// from init on linux only: keyring's D-Bus backends exist only there.
func guard() {
	if v, _ := syscall.Getenv(Marker); v == "1" {
		return
	}
	saved.addr, saved.addrSet = syscall.Getenv(addrVar)
	saved.kwallet, saved.kwSet = syscall.Getenv(kwalletVar)
	if syscall.Setenv(addrVar, disabledAddr) != nil {
		return
	}
	if syscall.Setenv(kwalletVar, "1") != nil {
		restoreVar(addrVar, saved.addr, saved.addrSet)
		return
	}
	saved.active = true
}

// Active reports whether the guard disabled D-Bus at process start, that is
// whether keyring's Secret Service and KWallet backends are unavailable in
// this process.
func Active() bool { return saved.active }

// Restore puts DBUS_SESSION_BUS_ADDRESS and DISABLE_KWALLET back exactly as
// they were before the guard ran (set to the same value, or unset). It is
// idempotent and meant to be called from an init function (package store's),
// after keyring's init has run.
func Restore() {
	if !saved.active || saved.restored {
		return
	}
	restoreVar(addrVar, saved.addr, saved.addrSet)
	restoreVar(kwalletVar, saved.kwallet, saved.kwSet)
	saved.restored = true
}

func restoreVar(name, value string, set bool) {
	if set {
		_ = syscall.Setenv(name, value)
		return
	}
	_ = syscall.Unsetenv(name)
}

package policy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	polkitName      = "org.freedesktop.PolicyKit1"
	polkitPath      = "/org/freedesktop/PolicyKit1/Authority"
	polkitAuthority = "org.freedesktop.PolicyKit1.Authority"
	// polkitAllowUserInteraction is CheckAuthorization's flag that lets
	// polkit ask the user through an authentication agent.
	polkitAllowUserInteraction uint32 = 1
)

// polkitSubject is polkit's (sa{sv}) subject.
type polkitSubject struct {
	Kind    string
	Details map[string]dbus.Variant
}

// polkitResult is CheckAuthorization's (bba{ss}) result.
type polkitResult struct {
	IsAuthorized bool
	IsChallenge  bool
	Details      map[string]string
}

// polkitAuthorize asks polkit on the system bus whether the agent's own
// process may perform PolkitAction, letting it ask the user (the action's
// defaults are auth_self: the user's own password, in the dialog the
// desktop's polkit authentication agent draws). It reports false for a
// wrong password or a dismissed dialog, and an error when polkit cannot
// ask at all. Cancelling ctx withdraws the question (the dialog closes).
//
// The subject is the agent itself (pid, start time and uid, so a reused
// pid cannot stand in): polkit lets a program check its own subject, while
// details (the server, the caller) are refused to callers other than root,
// so the dialog shows the action's fixed message and the tray, `mcpkey
// approvals` and the audit log say who asks.
func (po *Policy) polkitAuthorize(ctx context.Context, cancelID string) (bool, error) {
	conn, err := connectBus(po.opts.DBusSystemAddress, dbus.ConnectSystemBus)
	if err != nil {
		return false, fmt.Errorf("polkit: no system bus: %v", err)
	}
	defer conn.Close()
	st, err := readStat(os.Getpid())
	if err != nil {
		return false, fmt.Errorf("polkit: read own start time: %w", err)
	}
	subject := polkitSubject{Kind: "unix-process", Details: map[string]dbus.Variant{
		"pid":        dbus.MakeVariant(uint32(os.Getpid())),
		"start-time": dbus.MakeVariant(st.start),
		"uid":        dbus.MakeVariant(int32(os.Getuid())),
	}}
	obj := conn.Object(polkitName, polkitPath)
	var r polkitResult
	err = obj.CallWithContext(ctx, polkitAuthority+".CheckAuthorization", 0,
		subject, PolkitAction, map[string]string{}, polkitAllowUserInteraction, cancelID).Store(&r)
	if ctx.Err() != nil {
		// Close the dialog; polkit answers the pending call with an error.
		// Bounded: a wedged polkitd must not hold up the agent's Close.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Object(polkitName, polkitPath).CallWithContext(cctx, polkitAuthority+".CancelCheckAuthorization", 0, cancelID)
		return false, ctx.Err()
	}
	var de dbus.Error
	switch {
	case errors.As(err, &de) && (de.Name == "org.freedesktop.DBus.Error.ServiceUnknown" || de.Name == "org.freedesktop.DBus.Error.NameHasNoOwner"):
		return false, errors.New("polkit is not running (nothing owns " + polkitName + " on the system bus)")
	case err != nil:
		return false, fmt.Errorf("polkit: %v (is %s installed? the mcpkey package installs /usr/share/polkit-1/actions/%s.policy)", err, PolkitAction, PolkitAction)
	case r.IsAuthorized:
		return true, nil
	case r.Details["polkit.dismissed"] != "":
		return false, nil
	case r.IsChallenge:
		// polkit could ask but found no authentication agent for the agent's
		// process or session.
		return false, fmt.Errorf("polkit found no authentication agent to ask you (run the agent in your desktop session, or answer on a terminal with `pkttyagent --process %d`)", os.Getpid())
	}
	return false, nil
}

package store

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// keyctlRefused says why the kernel keyring cannot be used, or nil: the
// system calls refused (a container's seccomp profile refuses add_key and
// keyctl) or no user keyring to be had. keyring's own error says only
// "backend not available".
func keyctlRefused() error {
	if _, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_KEYRING, true); err != nil {
		return fmt.Errorf("%w: the kernel refused keyctl: %v (a container's seccomp profile refuses it)", ErrUnavailable, err)
	}
	return nil
}

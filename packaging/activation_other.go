//go:build !unix

package packaging

import "net"

// activationListener reports false: there is no systemd here.
func activationListener() (net.Listener, bool, error) { return nil, false, nil }

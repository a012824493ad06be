// Command busprobe links package store (and so keyring) and reports what
// the environment looks like once package initialisation is over. The
// busguard tests run it with a fake session bus and a fake dbus-launch.
package main

import (
	"fmt"
	"os"
	"slices"

	"github.com/99designs/keyring"

	"github.com/mcpkey/mcpkey/agent/store"
)

func main() {
	addr, addrSet := os.LookupEnv("DBUS_SESSION_BUS_ADDRESS")
	kw, kwSet := os.LookupEnv("DISABLE_KWALLET")
	fmt.Printf("addr=%q\naddr_set=%t\nkwallet=%q\nkwallet_set=%t\n", addr, addrSet, kw, kwSet)
	fmt.Printf("secret_service=%t\n", slices.Contains(keyring.AvailableBackends(), keyring.SecretServiceBackend))
	fmt.Printf("needs_reexec=%t\n", store.SecretServiceNeedsReexec(store.BackendAuto))
}

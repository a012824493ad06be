// Command busprobe links package store (and so keyring) and reports what
// the environment looks like once package initialisation is over. The
// busguard tests run it with a fake session bus and a fake dbus-launch.
//
// With arguments it exercises Open in a process whose environment the test
// chose (package initialisation reads it, so a test cannot change it in its
// own process):
//
//	busprobe open NAME   Open(auto) with ServiceName NAME; prints backend=,
//	                     notice=, err= and the log; removes what it created
//	busprobe fill NAME   Open(keyctl) with ServiceName NAME, then Put 1500-byte
//	                     items until one fails; prints stored=, err=, full=
//	                     and intact= (every earlier item still reads back)
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/99designs/keyring"
	"golang.org/x/sys/unix"

	"github.com/mcpkey/mcpkey/agent/store"
)

func main() {
	addr, addrSet := os.LookupEnv("DBUS_SESSION_BUS_ADDRESS")
	kw, kwSet := os.LookupEnv("DISABLE_KWALLET")
	fmt.Printf("addr=%q\naddr_set=%t\nkwallet=%q\nkwallet_set=%t\n", addr, addrSet, kw, kwSet)
	fmt.Printf("secret_service=%t\n", slices.Contains(keyring.AvailableBackends(), keyring.SecretServiceBackend))
	fmt.Printf("needs_reexec=%t\n", store.SecretServiceNeedsReexec(store.BackendAuto))
	if len(os.Args) != 3 {
		return
	}
	name := os.Args[2]
	defer removeKeyring(name)
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	switch os.Args[1] {
	case "open":
		s, err := store.Open(store.KeyringConfig{ServiceName: name, Logger: log})
		if err == nil {
			fmt.Printf("backend=%s\nnotice=%s\n", s.Backend(), store.Notice(s))
		} else {
			fmt.Printf("err=%q\n", err.Error())
		}
	case "fill":
		s, err := store.Open(store.KeyringConfig{Backend: store.BackendKeyctl, ServiceName: name, Logger: log})
		if err != nil {
			fmt.Printf("err=%q\n", err.Error())
			break
		}
		val := bytes.Repeat([]byte("t"), 1500)
		n := 0
		for ; n < 1000; n++ {
			if err = s.Put(ctx, fmt.Sprintf("item/%d", n), val); err != nil {
				break
			}
		}
		fmt.Printf("stored=%d\nerr=%q\nfull=%t\n", n, fmt.Sprint(err), errors.Is(err, store.ErrFull))
		intact := true
		for i := range n {
			if got, err := s.Get(ctx, fmt.Sprintf("item/%d", i)); err != nil || !bytes.Equal(got, val) {
				intact = false
			}
		}
		fmt.Printf("intact=%t\n", intact)
	}
	fmt.Printf("log=%q\n", strings.TrimSpace(logBuf.String()))
}

// removeKeyring unlinks the named keyring NAME under @u, if there is one.
func removeKeyring(name string) {
	if id, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, "keyring", name, 0); err == nil {
		_, _ = unix.KeyctlInt(unix.KEYCTL_UNLINK, id, unix.KEY_SPEC_USER_KEYRING, 0, 0)
	}
}

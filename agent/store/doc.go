// Package store keeps mcpkey's credentials: a small key/value Store
// interface, implemented over the OS keyring (github.com/99designs/keyring)
// and in memory, plus the typed layout (sessions, client registrations,
// static secrets) that the agent reads and writes through it.
//
// # Implementations
//
//   - NewMemory: in process, for tests and an ephemeral agent.
//   - Open(KeyringConfig): a keyring backend. auto (the default) means the
//     OS keyring: Keychain on macOS, Credential Manager on Windows, Secret
//     Service then KWallet elsewhere. On Linux, when none of them is there
//     at all (no D-Bus session bus, or no daemon owning the name: an SSH
//     session, a container, CI), it falls back to keyctl, the kernel
//     keyring (RAM only, gone at reboot, like ssh-agent's keys), and
//     Notice(store) returns KeyctlNotice for the agent to show. A keyring
//     that is there but locked or hung is an error, never a fallback (that
//     would hide the sessions stored in it). When nothing opens, or keyctl
//     is refused too (seccomp), the error is a *NoKeyringError listing
//     each backend tried and why, ending with FileBackendHint. It never
//     falls back to the file backend or to plaintext. keyctl, pass and
//     file (JWE-encrypted files, passphrase from KeyringConfig.Passphrase)
//     can also be chosen explicitly.
//   - keyctl's quota: a non-root user may keep 20000 bytes in 200 keys
//     (kernel.keys.maxbytes, maxkeys), all programs together: a handful
//     of sessions. A write that does not fit fails with ErrFull and a
//     message giving the quota's use (from /proc/key-users) and the ways
//     out; what was stored before stays.
//   - Chunked(inner, limit): splits values over limit into parts under a
//     manifest. Open applies it with DefaultChunkLimit (2000 bytes) to
//     every backend, so no item exceeds Windows Credential Manager's
//     2560-byte blob limit (danieljoos/wincred#18).
//
// # Keyring behaviour
//
//   - Namespacing: every item is stored as "mcpkey:" + key (the Secret
//     Service attribute profile holds it, and keyring uses it as the label
//     too). Keys lists only those and strips the prefix, so other
//     applications' items in a shared collection are never listed, read or
//     removed. On Windows the file backend uses "mcpkey_" (':' is not
//     allowed in file names; the directory is ours alone).
//   - Timeouts: every call into keyring runs in a goroutine bounded by
//     KeyringConfig.Timeout (10 s by default) and by ctx, as cli/cli's
//     internal/keyring does; go-libsecret waits for a prompt forever. A
//     timeout returns an error wrapping ErrUnavailable that names the
//     backend and the timeout ("secret-service did not answer within
//     10s"). Calls into the library are serialised (its backends are not
//     safe for concurrent use); a hung call keeps the slot, so later calls
//     time out too instead of queueing forever.
//   - Errors: keyring's ErrKeyNotFound (and a missing file on delete)
//     become ErrNotFound; every other backend failure, decode errors
//     included, wraps ErrUnavailable. Items that cannot be decoded by this
//     package wrap ErrCorrupt and name the key, never the content.
//   - Health check: Open lists our items and reads one (the file backend
//     thus checks its passphrase), or writes and deletes a probe item when
//     there are none. Listing alone is not enough: Secret Service lists a
//     locked collection's items, and go-libsecret treats a dismissed unlock
//     prompt as success.
//   - Secret Service collection: "login" by default. A missing collection
//     makes keyring call CreateCollection, which needs a prompter; tests use
//     "session" (in memory, always unlocked).
//
// # The D-Bus init hazard
//
// keyring's package init (secretservice.go and kwallet.go, linux) calls the
// 2019 godbus dbus.SessionBus(): every process linking the package dials
// the session bus, and with no address godbus runs dbus-launch and leaves a
// dbus-daemon behind. mcpkey's CLI commands link the same binary and must
// not pay that. Package internal/busguard imports only syscall, so by Go's
// initialisation order (packages by import path, each step the first whose
// imports are initialised) it initialises before os and keyring. Unless
// MCPKEY_KEYRING_DBUS=1 is set it points DBUS_SESSION_BUS_ADDRESS at
// "disabled:" and sets DISABLE_KWALLET=1; this package's init, which runs
// after keyring's, restores both exactly. In a guarded process the Secret
// Service and KWallet backends are therefore absent. The agent asks
// SecretServiceNeedsReexec(backend) and, when true, re-executes itself with
// ReexecEnv(). busguard_test.go builds testdata/busprobe and checks both
// halves with a fake bus socket and a fake dbus-launch.
//
// # Stored layout (SchemaVersion 1)
//
//	schema                    "1"; see EnsureSchema
//	session/<id>/meta         JSON, not secret: v, server, account, issuer,
//	                          client_id, client_source, client_auth_method,
//	                          token_type, expires_at, obtained_at, scopes,
//	                          has_refresh, has_client_secret
//	session/<id>/access       access token
//	session/<id>/refresh      refresh token (absent when none)
//	session/<id>/client_secret the secret of the client the session was
//	                          issued to (absent for public clients)
//	client/<hash>             JSON of oauth.Client; hash = 16 hex digits of
//	                          SHA-256(issuer); the stored issuer must match exactly
//	secret/<name>             a static secret's bytes
//
// <id> is SessionID(server, account): 16 hex digits of
// SHA-256(server + "\n" + account). PutSession writes refresh, then access,
// then meta; DeleteSession deletes meta first; so a session is listed only
// when complete. ListSessionMeta reads only meta items.
//
// # Tests
//
// storetest.Run is the one behaviour suite; it runs against memory,
// Chunked (limit 256, every inner item size-checked), file, keyctl (skipped
// only where keyctl syscalls are refused) and a real Secret Service. The
// last needs a private gnome-keyring; without one it is skipped, unless
// MCPKEY_TEST_REQUIRE_SECRET_SERVICE=1 makes it fail:
//
//	export GOCACHE="$(go env GOCACHE)" GOMODCACHE="$(go env GOMODCACHE)"
//	export HOME="$(mktemp -d)" XDG_DATA_HOME="$HOME/.local/share"
//	dbus-run-session -- sh -c 'echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null &&
//	  MCPKEY_KEYRING_DBUS=1 MCPKEY_TEST_REQUIRE_SECRET_SERVICE=1 go test -race ./agent/store/...'
//
// MCPKEY_KEYRING_DBUS=1 is needed there: without it the guard disables
// D-Bus in the test binary too.
package store

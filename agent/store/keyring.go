package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/99designs/keyring"

	"github.com/mcpkey/mcpkey/agent/store/internal/busguard"
	"github.com/mcpkey/mcpkey/internal/safefile"
)

// Backend names accepted by KeyringConfig.Backend.
const (
	BackendAuto          = "auto"
	BackendSecretService = "secret-service"
	BackendKWallet       = "kwallet"
	BackendKeychain      = "keychain"
	BackendWinCred       = "wincred"
	BackendKeyctl        = "keyctl"
	BackendPass          = "pass"
	BackendFile          = "file"
)

// DefaultTimeout bounds every keyring call when KeyringConfig.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// keyPrefix namespaces every item mcpkey writes to a keyring.
const keyPrefix = "mcpkey:"

// FileBackendHint is the line Open's error ends with when no OS keyring
// could be opened.
const FileBackendHint = "hint: run with --backend file (encrypted, passphrase from MCPKEY_FILE_PASSPHRASE or --passphrase-file)"

// KeyctlNotice is what a store opened by auto's fallback to the kernel
// keyring says (see Notice): the agent logs it at start, and status and
// the first login show it.
const KeyctlNotice = "sessions are kept in the kernel keyring until reboot; for persistence use --backend file or a Secret Service"

// Notice returns what the user should know about s ("" for nothing): for a
// store that auto opened on the kernel keyring because no OS keyring was
// there, KeyctlNotice.
func Notice(s Store) string {
	if n, ok := s.(interface{ Notice() string }); ok {
		return n.Notice()
	}
	return ""
}

// KeyringConfig configures Open. The zero value opens the OS keyring.
type KeyringConfig struct {
	// Backend is one of auto (""), secret-service, kwallet, keychain,
	// wincred, keyctl, pass, file. auto tries the OS keyring (keychain on
	// macOS, wincred on Windows, secret-service then kwallet elsewhere);
	// on Linux, when none of them is there at all (no D-Bus session bus,
	// or no daemon on it; not a locked or hung one), it falls back to
	// keyctl, the kernel keyring (memory only), and the store's Notice
	// says so. Never to file or plaintext.
	Backend string
	// ServiceName names mcpkey's items for the backend (Keychain service,
	// wincred target, keyctl keyring under @u). Default "mcpkey".
	ServiceName string
	// Collection is the Secret Service collection. Default "login"; tests
	// use "session" (in memory, always unlocked).
	Collection string
	// FileDir is the file backend's directory. Default DefaultFileDir().
	FileDir string
	// Passphrase returns the file backend's passphrase. It is called once,
	// by Open, outside the timeout (it may prompt a human). Required for
	// the file backend.
	Passphrase func(prompt string) (string, error)
	// Timeout bounds each keyring call, the health check at Open included.
	// Default DefaultTimeout.
	Timeout time.Duration
	// PassDir and PassCmd configure the pass backend (defaults: pass's).
	PassDir, PassCmd string
	// Logger receives debug and warning records; nil discards them.
	Logger *slog.Logger
}

// Attempt is one backend Open tried, and why it did not open.
type Attempt struct {
	Backend string
	Err     error
}

// NoKeyringError is Open's error when Backend is auto and no OS keyring
// opened (nor, on Linux, the kernel keyring it falls back to). It unwraps
// to ErrUnavailable. Its message lists every attempt and ends with
// FileBackendHint.
type NoKeyringError struct {
	Tried []Attempt
}

func (e *NoKeyringError) Error() string {
	var b strings.Builder
	b.WriteString("no OS keyring could be opened")
	if len(e.Tried) == 0 {
		fmt.Fprintf(&b, " (none is supported on %s)", runtime.GOOS)
	}
	for _, a := range e.Tried {
		fmt.Fprintf(&b, "\n  %s: %v", a.Backend, a.Err)
	}
	b.WriteString("\n")
	b.WriteString(FileBackendHint)
	return b.String()
}

func (e *NoKeyringError) Unwrap() error { return ErrUnavailable }

func attemptsString(tried []Attempt) string {
	var parts []string
	for _, a := range tried {
		parts = append(parts, a.Backend+": "+a.Err.Error())
	}
	return strings.Join(parts, "; ")
}

// errAbsent marks why a backend did not open when the keyring is simply not
// there (nothing to unlock, nothing stored in it), as opposed to locked,
// hung or broken.
var errAbsent = errors.New("keyring absent")

type absentError struct{ err error }

func (e absentError) Error() string   { return e.err.Error() }
func (e absentError) Unwrap() []error { return []error{e.err, errAbsent} }

// isAbsent reports whether err says the backend is not on this machine: not
// compiled in, no D-Bus session bus, or no daemon answering on it.
func isAbsent(err error) bool { return errors.Is(err, errAbsent) }

// Backends lists the names KeyringConfig.Backend accepts.
func Backends() []string {
	return []string{BackendAuto, BackendSecretService, BackendKWallet, BackendKeychain,
		BackendWinCred, BackendKeyctl, BackendPass, BackendFile}
}

// autoBackends is what auto tries on goos: the OS keyring only.
func autoBackends(goos string) []string {
	switch goos {
	case "darwin", "ios":
		return []string{BackendKeychain}
	case "windows":
		return []string{BackendWinCred}
	default:
		return []string{BackendSecretService, BackendKWallet}
	}
}

// DefaultFileDir is where the file backend keeps its items:
// $XDG_DATA_HOME/mcpkey/keyring (default ~/.local/share/…) on Unix,
// ~/Library/Application Support/mcpkey/keyring on macOS,
// %LOCALAPPDATA%\mcpkey\keyring on Windows.
func DefaultFileDir() (string, error) {
	switch runtime.GOOS {
	case "windows":
		if d := os.Getenv("LOCALAPPDATA"); d != "" {
			return filepath.Join(d, "mcpkey", "keyring"), nil
		}
		d, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("default file keyring directory: %w", err)
		}
		return filepath.Join(d, "mcpkey", "keyring"), nil
	case "darwin", "ios":
		d, err := os.UserConfigDir() // ~/Library/Application Support
		if err != nil {
			return "", fmt.Errorf("default file keyring directory: %w", err)
		}
		return filepath.Join(d, "mcpkey", "keyring"), nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "mcpkey", "keyring"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("default file keyring directory: %w", err)
	}
	return filepath.Join(home, ".local", "share", "mcpkey", "keyring"), nil
}

// Open opens the keyring backend cfg names, checks that it answers, and
// returns it as a Store chunked at DefaultChunkLimit. See OpenContext.
func Open(cfg KeyringConfig) (Store, error) {
	return OpenContext(context.Background(), cfg)
}

// OpenContext is Open under ctx. It runs a health check (listing keys, and
// for the file backend decrypting one existing item to check the
// passphrase) bounded by cfg.Timeout, so a locked or hung keyring is found
// at start. With Backend auto it tries the OS keyrings in order and returns
// a *NoKeyringError when none opens; it never falls back to keyctl or file.
// Every failure to reach a backend wraps ErrUnavailable.
func OpenContext(ctx context.Context, cfg KeyringConfig) (Store, error) {
	cfg.ServiceName = cmp.Or(cfg.ServiceName, "mcpkey")
	cfg.Collection = cmp.Or(cfg.Collection, "login")
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	name := cmp.Or(cfg.Backend, BackendAuto)
	if name == BackendAuto {
		var tried []Attempt
		absent := true // every OS keyring is missing, not locked or hung
		for _, b := range autoBackends(runtime.GOOS) {
			s, err := openBackend(ctx, cfg, b, "")
			if err == nil {
				return s, nil
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("open keyring: %w", ctx.Err())
			}
			cfg.Logger.Debug("keyring backend did not open", "backend", b, "err", err)
			tried = append(tried, Attempt{Backend: b, Err: err})
			absent = absent && isAbsent(err)
		}
		// A fresh machine (SSH, container, CI) has no OS keyring at all:
		// use the kernel keyring, as ssh-agent keeps keys in memory, and
		// say so. A keyring that is there but locked or hung is reported
		// instead: falling back would hide the sessions stored in it.
		if runtime.GOOS == "linux" && absent {
			s, err := openBackend(ctx, cfg, BackendKeyctl, KeyctlNotice)
			if err == nil {
				cfg.Logger.Warn("no OS keyring here; using the kernel keyring", "notice", KeyctlNotice, "tried", attemptsString(tried))
				return s, nil
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("open keyring: %w", ctx.Err())
			}
			tried = append(tried, Attempt{Backend: BackendKeyctl, Err: err})
		}
		return nil, &NoKeyringError{Tried: tried}
	}
	if !slices.Contains(Backends(), name) {
		return nil, fmt.Errorf("unknown keyring backend %q (want one of %s)", name, strings.Join(Backends(), ", "))
	}
	s, err := openBackend(ctx, cfg, name, "")
	if err != nil {
		return nil, fmt.Errorf("open %s keyring: %w", name, err)
	}
	return s, nil
}

// unregisteredReason says why keyring has no opener for backend here.
func unregisteredReason(backend string) error {
	switch backend {
	case BackendSecretService, BackendKWallet:
		if runtime.GOOS != "linux" {
			return absentError{fmt.Errorf("%w: not supported on %s", ErrUnavailable, runtime.GOOS)}
		}
		if busguard.Active() && !sessionBusConfigured() {
			return absentError{fmt.Errorf("%w: no D-Bus session bus is set (DBUS_SESSION_BUS_ADDRESS is unset and there is no $XDG_RUNTIME_DIR/bus)", ErrUnavailable)}
		}
		if busguard.Active() {
			return fmt.Errorf("%w: d-bus was disabled at process start (run with %s=1 to allow it)", ErrUnavailable, busguard.Marker)
		}
		if backend == BackendKWallet && os.Getenv("DISABLE_KWALLET") == "1" {
			return absentError{fmt.Errorf("%w: disabled by DISABLE_KWALLET=1", ErrUnavailable)}
		}
		return absentError{fmt.Errorf("%w: no D-Bus session bus answered at process start", ErrUnavailable)}
	case BackendKeychain:
		if runtime.GOOS == "darwin" {
			return fmt.Errorf("%w: not compiled in (build with CGO_ENABLED=1)", ErrUnavailable)
		}
	}
	return absentError{fmt.Errorf("%w: not supported on %s", ErrUnavailable, runtime.GOOS)}
}

// openBackend opens one backend, checks it, and wraps it; notice is what
// the store's Notice will say.
func openBackend(ctx context.Context, cfg KeyringConfig, backend, notice string) (Store, error) {
	if !slices.Contains(keyring.AvailableBackends(), keyring.BackendType(backend)) {
		return nil, unregisteredReason(backend)
	}
	kcfg := keyring.Config{
		AllowedBackends: []keyring.BackendType{keyring.BackendType(backend)},
		ServiceName:     cfg.ServiceName,
	}
	prefix := keyPrefix
	switch backend {
	case BackendSecretService:
		kcfg.LibSecretCollectionName = cfg.Collection
	case BackendKWallet:
		// keyring uses ServiceName as the wallet name: use the user's
		// default wallet, in a folder of our own.
		kcfg.ServiceName = "kdewallet"
		kcfg.KWalletAppID = cfg.ServiceName
		kcfg.KWalletFolder = cfg.ServiceName
	case BackendKeychain:
		kcfg.KeychainTrustApplication = true
		kcfg.KeychainAccessibleWhenUnlocked = true
	case BackendKeyctl:
		if err := keyctlRefused(); err != nil {
			return nil, err
		}
		kcfg.KeyCtlScope = "user"
	case BackendPass:
		kcfg.PassDir = cfg.PassDir
		kcfg.PassCmd = cfg.PassCmd
		kcfg.PassPrefix = cfg.ServiceName
	case BackendFile:
		dir := cfg.FileDir
		if dir == "" {
			d, err := DefaultFileDir()
			if err != nil {
				return nil, err
			}
			dir = d
		}
		if cfg.Passphrase == nil {
			return nil, errors.New("the file backend needs a passphrase (MCPKEY_FILE_PASSPHRASE, --passphrase-file or a terminal)")
		}
		// keyring writes its files with os.WriteFile: the directory must
		// be ours, and closed to others, before anything goes into it.
		if err := safefile.CheckDir(dir); err != nil {
			return nil, fmt.Errorf("file keyring: %w", err)
		}
		// Asked once, here, outside the per-call timeout: a human may be
		// typing. keyring would otherwise prompt lazily, under a timeout.
		pw, err := cfg.Passphrase(fmt.Sprintf("passphrase for the mcpkey file keyring in %s", dir))
		if err != nil {
			return nil, fmt.Errorf("read file keyring passphrase: %w", err)
		}
		if pw == "" {
			return nil, errors.New("the file keyring passphrase is empty")
		}
		kcfg.FileDir = dir
		kcfg.FilePasswordFunc = keyring.FixedStringPrompt(pw)
		if runtime.GOOS == "windows" {
			// keyring names files after keys and does not escape ':'
			// (an NTFS stream separator); the directory is ours alone.
			prefix = "mcpkey_"
		}
	}
	ks := &keyringStore{
		name:    backend,
		prefix:  prefix,
		timeout: cfg.Timeout,
		sem:     make(chan struct{}, 1),
		logger:  cfg.Logger,
		notice:  notice,
	}
	ring, err := callT(ctx, ks, "open", "", func() (keyring.Keyring, error) {
		return keyring.Open(kcfg)
	})
	if err != nil {
		if errors.Is(err, keyring.ErrNoAvailImpl) && (backend == BackendSecretService || backend == BackendKWallet) {
			// keyring.Open hides the opener's error; for these it is a
			// D-Bus call to a name nobody owns (no keyring daemon). A
			// locked keyring opens, a hung one times out instead.
			return nil, absentError{fmt.Errorf("%w: no %s daemon answers on the D-Bus session bus", ErrUnavailable, backend)}
		}
		return nil, err
	}
	ks.ring = ring
	n, err := ks.healthCheck(ctx)
	if err != nil {
		return nil, err
	}
	cfg.Logger.Debug("keyring opened", "backend", backend, "items", n)
	return Chunked(ks, DefaultChunkLimit), nil
}

// healthKey is the probe item healthCheck writes and deletes.
const healthKey = "health"

// healthCheck proves the backend can be used: it lists our items and reads
// one (the schema item if present), or, when there are none, writes and
// deletes a probe item. Listing alone is not enough: Secret Service lists a
// locked collection's items, and go-libsecret treats a dismissed unlock
// prompt as success. It returns the number of items.
func (k *keyringStore) healthCheck(ctx context.Context) (int, error) {
	hint := ""
	switch k.name {
	case BackendFile:
		hint = " (wrong passphrase?)"
	case BackendSecretService, BackendKWallet, BackendKeychain:
		hint = " (is the keyring locked?)"
	}
	keys, err := k.Keys(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("health check: %w%s", err, hint)
	}
	if len(keys) > 0 {
		probe := keys[0]
		if slices.Contains(keys, schemaKey) {
			probe = schemaKey
		}
		if _, err := k.Get(ctx, probe); err != nil && !errors.Is(err, ErrNotFound) {
			if !errors.Is(err, ErrUnavailable) { // a file item that does not decrypt
				err = fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			return 0, fmt.Errorf("health check: %w%s", err, hint)
		}
		return len(keys), nil
	}
	if err := k.Put(ctx, healthKey, []byte("ok")); err != nil {
		return 0, fmt.Errorf("health check: %w%s", err, hint)
	}
	if err := k.Delete(ctx, healthKey); err != nil {
		return 0, fmt.Errorf("health check: %w", err)
	}
	return 0, nil
}

// keyringStore adapts a keyring.Keyring to Store: prefixed keys, error
// mapping, and a timeout on every call.
type keyringStore struct {
	ring    keyring.Keyring
	name    string // backend name
	prefix  string // "mcpkey:"
	timeout time.Duration
	// sem holds one token while a call is inside the library: keyring's
	// backends are not safe for concurrent use (secret-service mutates its
	// session on every call). A call that hangs keeps it, so later calls
	// time out waiting for it instead of piling up goroutines.
	sem    chan struct{}
	logger *slog.Logger
	notice string // see Notice
}

var _ Store = (*keyringStore)(nil)

func (k *keyringStore) Backend() string { return k.name }

func (k *keyringStore) Notice() string { return k.notice }

func opName(op, key string) string {
	if key == "" {
		return op
	}
	return op + " " + key
}

// callT runs fn in a goroutine under k's timeout and ctx, as cli/cli's
// internal/keyring does: a hung D-Bus call (go-libsecret waits for a
// prompt's Completed signal forever) cannot hang the agent.
func callT[T any](ctx context.Context, k *keyringStore, op, key string, fn func() (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("%s: %w", opName(op, key), err)
	}
	timer := time.NewTimer(k.timeout)
	defer timer.Stop()
	select {
	case k.sem <- struct{}{}:
	case <-timer.C:
		return zero, k.timeoutErr(op, key)
	case <-ctx.Done():
		return zero, fmt.Errorf("%s: %w", opName(op, key), ctx.Err())
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-k.sem }()
		defer func() {
			if recover() != nil {
				// The panic value is not reported: it might quote data.
				done <- result{err: fmt.Errorf("%w: %s: the keyring library panicked", ErrUnavailable, k.name)}
			}
		}()
		v, err := fn()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return zero, k.mapErr(op, key, r.err)
		}
		return r.v, nil
	case <-timer.C:
		return zero, k.timeoutErr(op, key)
	case <-ctx.Done():
		return zero, fmt.Errorf("%s: %w", opName(op, key), ctx.Err())
	}
}

func (k *keyringStore) timeoutErr(op, key string) error {
	k.logger.Warn("keyring call timed out", "backend", k.name, "op", op, "key", key, "timeout", k.timeout)
	return fmt.Errorf("%s: %w: %s did not answer within %s", opName(op, key), ErrUnavailable, k.name, k.timeout)
}

// mapErr translates keyring's errors: not-found to ErrNotFound, everything
// else (decode failures included) to ErrUnavailable.
func (k *keyringStore) mapErr(op, key string, err error) error {
	switch {
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrNotFound):
		return fmt.Errorf("%s: %w", opName(op, key), err)
	case errors.Is(err, keyring.ErrKeyNotFound), op == "delete" && errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w", opName(op, key), ErrNotFound)
	case k.name == BackendKeyctl && errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%s: %w: the kernel keyring's per-user quota is used up (%s); log out of sessions you no longer need, raise it (sysctl kernel.keys.maxbytes and kernel.keys.maxkeys), or use --backend file",
			opName(op, key), ErrFull, keyctlQuota())
	case op == "get" && k.name == BackendFile && key != "":
		// The passphrase was proven at Open (healthCheck): an item
		// that cannot be read or decrypted now (garbage, zero bytes,
		// a directory in its place) is that item's fault, not the
		// store's. The error names the file, never its content.
		return fmt.Errorf("%s: %w: %s: %w", opName(op, key), ErrCorrupt, k.name, err)
	}
	return fmt.Errorf("%s: %w: %s: %w", opName(op, key), ErrUnavailable, k.name, err)
}

// label is the human-readable item label (Keychain shows it; Secret
// Service's label is the key itself, keyring does not let us set it).
func label(key string) string {
	return "mcpkey: " + strings.ReplaceAll(key, "/", " ")
}

func (k *keyringStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := validKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	item, err := callT(ctx, k, "get", key, func() (keyring.Item, error) {
		return k.ring.Get(k.prefix + key)
	})
	if err != nil {
		return nil, err
	}
	if item.Data == nil {
		return []byte{}, nil
	}
	return item.Data, nil
}

func (k *keyringStore) Put(ctx context.Context, key string, value []byte) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	item := keyring.Item{
		Key:         k.prefix + key,
		Data:        value,
		Label:       label(key),
		Description: "mcpkey credential store",
	}
	_, err := callT(ctx, k, "put", key, func() (struct{}, error) {
		return struct{}{}, k.ring.Set(item)
	})
	return err
}

func (k *keyringStore) Delete(ctx context.Context, key string) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if k.name == BackendSecretService || k.name == BackendKWallet {
		// Their Remove reports success for a missing item.
		if _, err := k.Get(ctx, key); err != nil {
			if errors.Is(err, ErrNotFound) {
				return fmt.Errorf("delete %s: %w", key, ErrNotFound)
			}
			return err
		}
	}
	_, err := callT(ctx, k, "delete", key, func() (struct{}, error) {
		return struct{}{}, k.ring.Remove(k.prefix + key)
	})
	return err
}

func (k *keyringStore) Keys(ctx context.Context, prefix string) ([]string, error) {
	all, err := callT(ctx, k, "keys", "", func() ([]string, error) {
		return k.ring.Keys()
	})
	if err != nil {
		return nil, err
	}
	full := k.prefix + prefix
	var keys []string
	for _, raw := range all {
		if strings.HasPrefix(raw, full) {
			keys = append(keys, strings.TrimPrefix(raw, k.prefix))
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

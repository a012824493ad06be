package store_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/99designs/keyring"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/agent/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := store.NewMemory()
		if s.Backend() != "memory" {
			t.Fatalf("Backend() = %q", s.Backend())
		}
		return s
	})
}

// sizeChecked fails the test when an item over limit reaches the store.
type sizeChecked struct {
	store.Store
	t     *testing.T
	limit int
}

func (s *sizeChecked) Put(ctx context.Context, key string, v []byte) error {
	if len(v) > s.limit {
		s.t.Errorf("item %s of %d bytes reached the inner store, limit %d", key, len(v), s.limit)
	}
	return s.Store.Put(ctx, key, v)
}

func TestChunked(t *testing.T) {
	const limit = store.MinChunkLimit
	storetest.Run(t, func(t *testing.T) store.Store {
		return store.Chunked(&sizeChecked{Store: store.NewMemory(), t: t, limit: limit}, limit)
	})
}

func TestChunkedLayout(t *testing.T) {
	ctx := t.Context()
	inner := store.NewMemory()
	s := store.Chunked(inner, 300) // parts of at most 300 bytes
	v := bytes.Repeat([]byte("0123456789"), 100)
	if err := s.Put(ctx, "big", v); err != nil {
		t.Fatal(err)
	}
	raw, _ := inner.Keys(ctx, "")
	if len(raw) != 5 { // manifest + 4 parts
		t.Fatalf("inner keys = %q, want the manifest and 4 parts", raw)
	}
	keys, _ := s.Keys(ctx, "")
	if !slices.Equal(keys, []string{"big"}) {
		t.Fatalf("Keys = %q, want only big", keys)
	}
	if err := s.Put(ctx, "bad#key", []byte("x")); !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("Put(bad#key) error = %v, want ErrInvalidKey", err)
	}

	// Shrinking to a small value removes the parts.
	if err := s.Put(ctx, "big", []byte("small")); err != nil {
		t.Fatal(err)
	}
	if raw, _ := inner.Keys(ctx, ""); !slices.Equal(raw, []string{"big"}) {
		t.Fatalf("after shrinking inner keys = %q, want [big]", raw)
	}

	// A damaged or missing part is corrupt, never "not found".
	if err := s.Put(ctx, "big", v); err != nil {
		t.Fatal(err)
	}
	raw, _ = inner.Keys(ctx, "big#")
	if err := inner.Put(ctx, raw[0], []byte("tampered")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "big"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Get with a tampered part error = %v, want ErrCorrupt", err)
	}
	if err := inner.Delete(ctx, raw[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "big"); !errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get with a missing part error = %v, want ErrCorrupt only", err)
	}
	if err := s.Delete(ctx, "big"); err != nil {
		t.Fatal(err)
	}
}

// failAfter fails every Put after the first n.
type failAfter struct {
	store.Store
	n int
}

var errInjected = errors.New("injected failure")

func (f *failAfter) Put(ctx context.Context, key string, v []byte) error {
	if f.n == 0 {
		return errInjected
	}
	f.n--
	return f.Store.Put(ctx, key, v)
}

func TestChunkedInterruptedPutKeepsOldValue(t *testing.T) {
	ctx := t.Context()
	inner := store.NewMemory()
	old := bytes.Repeat([]byte("a"), 1000)
	if err := store.Chunked(inner, 300).Put(ctx, "k", old); err != nil {
		t.Fatal(err)
	}
	before, _ := inner.Keys(ctx, "")
	for n := range 5 { // fail at each of the new value's writes
		s := store.Chunked(&failAfter{Store: inner, n: n}, 300)
		if err := s.Put(ctx, "k", bytes.Repeat([]byte("b"), 1000)); !errors.Is(err, errInjected) {
			t.Fatalf("n=%d: Put error = %v, want the injected failure", n, err)
		}
		got, err := s.Get(ctx, "k")
		if err != nil || !bytes.Equal(got, old) {
			t.Fatalf("n=%d: after an interrupted Put Get = %d bytes, %v; want the old value", n, len(got), err)
		}
		if after, _ := inner.Keys(ctx, ""); !slices.Equal(after, before) {
			t.Fatalf("n=%d: interrupted Put left items %q, want %q", n, after, before)
		}
	}
}

func fixedPassphrase(pw string) func(string) (string, error) {
	return func(string) (string, error) { return pw, nil }
}

func TestFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.Open(store.KeyringConfig{
			Backend:    store.BackendFile,
			FileDir:    filepath.Join(t.TempDir(), "keyring"),
			Passphrase: fixedPassphrase("test passphrase"),
		})
		if err != nil {
			t.Fatalf("Open(file): %v", err)
		}
		if s.Backend() != "file" {
			t.Fatalf("Backend() = %q", s.Backend())
		}
		return s
	})
}

func TestFileEncryptedAndPassphraseChecked(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "keyring")
	cfg := store.KeyringConfig{Backend: store.BackendFile, FileDir: dir, Passphrase: fixedPassphrase("right")}
	s, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "plaintext-refresh-token-value"
	if err := s.Put(ctx, "session/x/refresh", []byte(secret)); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "mcpkey:") {
		t.Fatalf("file keyring dir holds %v, want one mcpkey: item", entries)
	}
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if bytes.Contains(b, []byte(secret)) {
			t.Fatalf("%s holds the secret in plaintext", e.Name())
		}
		if fi, _ := e.Info(); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
	cfg.Passphrase = fixedPassphrase("wrong")
	if _, err := store.Open(cfg); err == nil || !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("Open with a wrong passphrase error = %v, want an ErrUnavailable passphrase error", err)
	}
	cfg.Passphrase = nil
	if _, err := store.Open(cfg); err == nil {
		t.Fatal("Open(file) without a passphrase succeeded")
	}
	cfg.Passphrase = fixedPassphrase("")
	if _, err := store.Open(cfg); err == nil {
		t.Fatal("Open(file) with an empty passphrase succeeded")
	}
}

func TestKeyctl(t *testing.T) {
	if _, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_KEYRING, true); err != nil {
		t.Skipf("keyctl syscalls refused here: %v", err)
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		service := "mcpkey-test-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + time.Now().Format("150405.000000000")
		t.Cleanup(func() {
			if id, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, "keyring", service, 0); err == nil {
				_, _ = unix.KeyctlInt(unix.KEYCTL_UNLINK, id, unix.KEY_SPEC_USER_KEYRING, 0, 0)
			}
		})
		raw, err := keyring.Open(keyring.Config{
			AllowedBackends: []keyring.BackendType{keyring.KeyCtlBackend},
			ServiceName:     service,
			KeyCtlScope:     "user",
		})
		if err != nil {
			t.Fatalf("open raw keyctl: %v", err)
		}
		plantForeign(t, raw)
		s, err := store.Open(store.KeyringConfig{Backend: store.BackendKeyctl, ServiceName: service})
		if err != nil {
			t.Fatalf("Open(keyctl): %v", err)
		}
		return s
	})
}

// plantForeign stores another application's item next to ours and checks,
// when the test ends, that it is still there, unchanged.
func plantForeign(t *testing.T, raw keyring.Keyring) {
	t.Helper()
	item := keyring.Item{Key: "otherapp:token", Data: []byte("other application's secret"), Label: "otherapp:token"}
	if err := raw.Set(item); err != nil {
		t.Fatalf("plant foreign item: %v", err)
	}
	t.Cleanup(func() {
		got, err := raw.Get(item.Key)
		if err != nil || !bytes.Equal(got.Data, item.Data) {
			t.Errorf("another application's item was touched: %v", err)
		}
		_ = raw.Remove(item.Key)
	})
}

// TestSecretService runs the suite against a real Secret Service
// (gnome-keyring) in collection "session". It needs a session bus and
// MCPKEY_KEYRING_DBUS=1 (else the D-Bus guard disables the backend in the
// test binary); it is skipped without them unless
// MCPKEY_TEST_REQUIRE_SECRET_SERVICE=1.
func TestSecretService(t *testing.T) {
	cfg := store.KeyringConfig{Backend: store.BackendSecretService, Collection: "session", Timeout: 5 * time.Second}
	if _, err := store.Open(cfg); err != nil {
		msg := "no Secret Service: " + err.Error() +
			"\n(run in dbus-run-session with gnome-keyring-daemon and MCPKEY_KEYRING_DBUS=1; see doc.go)"
		if os.Getenv("MCPKEY_TEST_REQUIRE_SECRET_SERVICE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	raw, err := keyring.Open(keyring.Config{
		AllowedBackends:         []keyring.BackendType{keyring.SecretServiceBackend},
		ServiceName:             "mcpkey",
		LibSecretCollectionName: "session",
	})
	if err != nil {
		t.Fatalf("open raw secret service: %v", err)
	}
	clear := func() {
		keys, err := raw.Keys()
		if err != nil {
			t.Fatalf("raw keys: %v", err)
		}
		for _, k := range keys {
			if strings.HasPrefix(k, "mcpkey:") {
				if err := raw.Remove(k); err != nil {
					t.Fatalf("clear %s: %v", k, err)
				}
			}
		}
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		clear()
		t.Cleanup(clear)
		plantForeign(t, raw)
		s, err := store.Open(cfg)
		if err != nil {
			t.Fatalf("Open(secret-service): %v", err)
		}
		return s
	})
}

// TestOpenAutoWithoutABus: with no D-Bus session bus set (an SSH session,
// a container, CI), auto opens the kernel keyring and says so (issue 12
// §8); the reasons name the missing bus, not a disabled one. With a bus set
// but disabled by the guard (a process that did not re-execute), a Secret
// Service may be there, so auto does not fall back and lists what it tried.
func TestOpenAutoWithoutABus(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the kernel keyring fallback is Linux only")
	}
	if _, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_KEYRING, true); err != nil {
		t.Skipf("keyctl syscalls refused here: %v", err)
	}
	for _, f := range []string{"bus", "dbus-session"} {
		// godbus finds these whatever the environment says.
		if p := filepath.Join("/run/user", strconv.Itoa(os.Getuid()), f); fileExists(p) {
			t.Skipf("%s exists: a session bus runs for this user, so \"no bus\" cannot be set up", p)
		}
	}
	bin := buildProbe(t)
	name := "mcpkey-test-auto-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	got := runProbe(t, bin, append(baseEnv(), "PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR="+t.TempDir()), "open", name)
	if got["backend"] != store.BackendKeyctl || got["notice"] != store.KeyctlNotice {
		t.Fatalf("Open(auto) without a bus: backend %q notice %q err %s; want keyctl with the notice", got["backend"], got["notice"], got["err"])
	}
	log, _ := strconv.Unquote(got["log"])
	for _, want := range []string{"no D-Bus session bus is set", "using the kernel keyring", store.KeyctlNotice} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "disabled at process start") {
		t.Errorf("log blames a disabled d-bus although none is set:\n%s", log)
	}

	got = runProbe(t, bin, append(baseEnv(), "PATH=/usr/bin:/bin", "DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(t.TempDir(), "bus")), "open", name)
	msg, _ := strconv.Unquote(got["err"])
	if got["backend"] != "" {
		t.Fatalf("Open(auto) with a bus it may not use opened %q", got["backend"])
	}
	for _, want := range []string{"secret-service:", "kwallet:", "d-bus was disabled", store.FileBackendHint} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if _, err := store.Open(store.KeyringConfig{Backend: "plaintext"}); err == nil || !strings.Contains(err.Error(), "unknown keyring backend") {
		t.Errorf("Open(plaintext) error = %v, want unknown backend", err)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestOpenAutoBusWithoutKeyringDaemon: a headless server with a D-Bus
// session bus (dbus-user-session) but no keyring daemon on it. A private
// dbus-daemon with no service directories plays that bus: nothing can be
// activated. auto falls back to the kernel keyring there too.
func TestOpenAutoBusWithoutKeyringDaemon(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the kernel keyring fallback is Linux only")
	}
	if _, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_KEYRING, true); err != nil {
		t.Skipf("keyctl syscalls refused here: %v", err)
	}
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skip("dbus-daemon missing")
	}
	bin := buildProbe(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "bus")
	conf := filepath.Join(dir, "bus.conf")
	os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path=`+sock+`</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy>
</busconfig>`), 0o600)
	bus := exec.Command(daemon, "--config-file="+conf, "--nofork")
	if err := bus.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Process.Kill(); bus.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the private dbus-daemon never listened")
		}
		time.Sleep(10 * time.Millisecond) // polling for the socket, with a deadline
	}
	name := "mcpkey-test-nodaemon-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	got := runProbe(t, bin, append(baseEnv(), "PATH=/usr/bin:/bin", "HOME="+dir,
		"DBUS_SESSION_BUS_ADDRESS=unix:path="+sock, "MCPKEY_KEYRING_DBUS=1"), "open", name)
	if got["backend"] != store.BackendKeyctl || got["notice"] != store.KeyctlNotice {
		t.Fatalf("Open(auto) on a bus without a keyring daemon: backend %q, err %s", got["backend"], got["err"])
	}
	if log, _ := strconv.Unquote(got["log"]); !strings.Contains(log, "no secret-service daemon answers on the D-Bus session bus") {
		t.Errorf("the log does not say why the Secret Service was not used:\n%s", log)
	}
}

// TestKeyctlQuotaFull fills the kernel keyring as a normal user (a uid of
// its own, so no other program shares the quota:
// 20000 bytes and 200 keys for all its keys together): the write that does
// not fit fails with ErrFull and a message saying how full the quota is and
// what to do; everything stored before still reads back.
func TestKeyctlQuotaFull(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root to run the probe as another user with setpriv (CI runs as root)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv missing (util-linux)")
	}
	if _, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_KEYRING, true); err != nil {
		t.Skipf("keyctl syscalls refused here: %v", err)
	}
	bin := buildProbe(t)
	// That uid must reach the binary: t.TempDir's parent is 0700.
	dir, err := os.MkdirTemp("", "mcpkey-probe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	shared := filepath.Join(dir, "busprobe")
	b, _ := os.ReadFile(bin)
	if err := os.WriteFile(shared, b, 0o755); err != nil {
		t.Fatal(err)
	}
	name := "mcpkey-test-quota-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	uid := strconv.Itoa(300000 + os.Getpid()%50000)
	cmd := exec.Command("setpriv", "--reuid", uid, "--regid", uid, "--clear-groups", shared, "fill", name)
	cmd.Env = append(baseEnv(), "PATH=/usr/bin:/bin")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe as uid %s: %v", uid, err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	msg, _ := strconv.Unquote(got["err"])
	if got["full"] != "true" {
		t.Fatalf("filling the keyring as uid %s ended with %q after %s items, want ErrFull", uid, msg, got["stored"])
	}
	if n, _ := strconv.Atoi(got["stored"]); n < 3 || n > 13 {
		t.Errorf("%d items of 1500 bytes fit in a 20000-byte quota", n)
	}
	for _, want := range []string{"quota is used up", "bytes and", "keys in use", "log out of sessions", "--backend file"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if got["intact"] != "true" {
		t.Error("items stored before the quota ran out no longer read back")
	}
}

func TestReexecEnv(t *testing.T) {
	t.Setenv("MCPKEY_KEYRING_DBUS", "0")
	env := store.ReexecEnv()
	n := 0
	for _, kv := range env {
		if strings.HasPrefix(kv, "MCPKEY_KEYRING_DBUS=") {
			n++
			if kv != "MCPKEY_KEYRING_DBUS=1" {
				t.Errorf("ReexecEnv has %s", kv)
			}
		}
	}
	if n != 1 {
		t.Errorf("ReexecEnv has the marker %d times, want once", n)
	}
	if store.SecretServiceNeedsReexec(store.BackendFile) || store.SecretServiceNeedsReexec(store.BackendKeyctl) {
		t.Error("SecretServiceNeedsReexec is true for a backend without D-Bus")
	}
}

// TestSecretServiceAuto opens the default configuration (auto, collection
// "login") in the hermetic gnome-keyring session the README's test command
// starts; it runs only with MCPKEY_TEST_REQUIRE_SECRET_SERVICE=1, so it
// never touches a developer's real login keyring.
func TestSecretServiceAuto(t *testing.T) {
	if os.Getenv("MCPKEY_TEST_REQUIRE_SECRET_SERVICE") != "1" {
		t.Skip("only in the hermetic Secret Service run (MCPKEY_TEST_REQUIRE_SECRET_SERVICE=1)")
	}
	s, err := store.Open(store.KeyringConfig{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("Open(auto): %v", err)
	}
	if s.Backend() != store.BackendSecretService {
		t.Fatalf("auto opened %q, want secret-service", s.Backend())
	}
}

// TestSecretServiceLocked locks the hermetic "login" collection and checks
// that Open fails within the timeout (no prompter can answer) instead of
// hanging. It runs after TestSecretServiceAuto and leaves login locked.
func TestSecretServiceLocked(t *testing.T) {
	if os.Getenv("MCPKEY_TEST_REQUIRE_SECRET_SERVICE") != "1" {
		t.Skip("only in the hermetic Secret Service run (MCPKEY_TEST_REQUIRE_SECRET_SERVICE=1)")
	}
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var locked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	err = conn.Object("org.freedesktop.secrets", "/org/freedesktop/secrets").
		Call("org.freedesktop.Secret.Service.Lock", 0, []dbus.ObjectPath{"/org/freedesktop/secrets/collection/login"}).
		Store(&locked, &prompt)
	if err != nil || len(locked) != 1 {
		t.Fatalf("lock login: %v (locked %v, prompt %s)", err, locked, prompt)
	}
	const timeout = 2 * time.Second
	start := time.Now()
	_, err = store.Open(store.KeyringConfig{Backend: store.BackendSecretService, Timeout: timeout})
	elapsed := time.Since(start)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open on a locked collection error = %v, want ErrUnavailable", err)
	}
	if elapsed > 2*timeout+time.Second {
		t.Fatalf("Open on a locked collection took %v, timeout %v", elapsed, timeout)
	}
	t.Logf("locked collection: %v (after %v)", err, elapsed.Round(time.Millisecond))
}

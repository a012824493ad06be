package store

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/99designs/keyring"
)

// fakeHungKeyring is a fake at the OS edge: a keyring daemon that never
// answers until released (go-libsecret waiting for a prompt's Completed).
type fakeHungKeyring struct {
	release chan struct{}
	calls   chan string
}

func (f *fakeHungKeyring) wait(op string) {
	f.calls <- op
	<-f.release
}

func (f *fakeHungKeyring) Get(key string) (keyring.Item, error) {
	f.wait("get")
	return keyring.Item{Key: key, Data: []byte("late")}, nil
}
func (f *fakeHungKeyring) GetMetadata(string) (keyring.Metadata, error) {
	return keyring.Metadata{}, keyring.ErrMetadataNotSupported
}
func (f *fakeHungKeyring) Set(keyring.Item) error { f.wait("set"); return nil }
func (f *fakeHungKeyring) Remove(string) error    { f.wait("remove"); return nil }
func (f *fakeHungKeyring) Keys() ([]string, error) {
	f.wait("keys")
	return nil, nil
}

func newTestKeyringStore(ring keyring.Keyring, timeout time.Duration) *keyringStore {
	return &keyringStore{ring: ring, name: "secret-service", prefix: keyPrefix, timeout: timeout,
		sem: make(chan struct{}, 1), logger: slog.New(slog.DiscardHandler)}
}

func TestKeyringTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeHungKeyring{release: make(chan struct{}), calls: make(chan string, 10)}
		const timeout = 3 * time.Second
		k := newTestKeyringStore(fake, timeout)

		start := time.Now()
		_, err := k.Get(t.Context(), "session/x/meta")
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Get on a hung keyring error = %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d != timeout {
			t.Errorf("Get returned after %v, want the timeout %v", d, timeout)
		}
		if msg := err.Error(); !strings.Contains(msg, "secret-service did not answer within 3s") || !strings.Contains(msg, "session/x/meta") {
			t.Errorf("timeout error %q does not name the backend, key and timeout", msg)
		}

		// The hung call keeps the library busy; the next call must still
		// return within the timeout, not queue behind it forever.
		start = time.Now()
		if err := k.Put(t.Context(), "k", []byte("v")); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("second call error = %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d != timeout {
			t.Errorf("second call returned after %v, want %v", d, timeout)
		}

		// ctx cancellation returns at once, without ErrUnavailable.
		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(time.Second); cancel() }()
		start = time.Now()
		if _, err := k.Keys(ctx, ""); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("Keys with canceled ctx error = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("canceled call returned after %v, want 1s", d)
		}

		// Once the daemon answers, calls work again.
		close(fake.release)
		synctest.Wait()
		got, err := k.Get(t.Context(), "k")
		if err != nil || string(got) != "late" {
			t.Fatalf("Get after release = %q, %v", got, err)
		}
		if n := len(fake.calls); n != 2 {
			t.Errorf("the library was entered %d times, want 2 (the hung get and the last get)", n)
		}
	})
}

// fakeRing is a fake keyring.Keyring whose answers the test sets.
type fakeRing struct {
	keyring.Keyring
	getErr, removeErr error
	panics            bool
	keys              []string
}

func (f *fakeRing) Get(string) (keyring.Item, error) {
	if f.panics {
		panic("secret value in panic")
	}
	return keyring.Item{}, f.getErr
}
func (f *fakeRing) Remove(string) error     { return f.removeErr }
func (f *fakeRing) Keys() ([]string, error) { return f.keys, nil }

func TestKeyringErrorMapping(t *testing.T) {
	ctx := t.Context()
	ring := &fakeRing{}
	k := newTestKeyringStore(ring, time.Second)
	k.name = "file"

	ring.getErr = keyring.ErrKeyNotFound
	if _, err := k.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ErrKeyNotFound mapped to %v, want ErrNotFound", err)
	}
	// The file backend's passphrase is proven at Open: an item that does
	// not decode afterwards is that item's fault (issue 12 §7).
	ring.getErr = errors.New("invalid character 'x' looking for beginning of value")
	if _, err := k.Get(ctx, "a"); !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "get a:") {
		t.Errorf("file decode error mapped to %v, want ErrCorrupt naming the item", err)
	}
	k.name = "secret-service"
	if _, err := k.Get(ctx, "a"); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
		t.Errorf("secret-service error mapped to %v, want ErrUnavailable and not ErrNotFound", err)
	}
	k.name = "file"
	ring.removeErr = &fs.PathError{Op: "remove", Path: "x", Err: fs.ErrNotExist}
	if err := k.Delete(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("file Remove of a missing item mapped to %v, want ErrNotFound", err)
	}
	ring.panics = true
	_, err := k.Get(ctx, "a")
	if !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "secret value") {
		t.Errorf("library panic mapped to %v, want ErrUnavailable without the panic value", err)
	}

	ring.keys = []string{"mcpkey:a/1", "otherapp:a/1", "mcpkey:b", "mcpkeyx:a", "mcpkey:a/1"}
	keys, err := k.Keys(ctx, "a/")
	if err != nil || strings.Join(keys, ",") != "a/1" {
		t.Errorf("Keys(a/) = %q, %v; want [a/1]", keys, err)
	}
}

func TestSecretServiceDeleteMissing(t *testing.T) {
	// Secret Service's Remove succeeds for a missing item; Delete must
	// still say ErrNotFound.
	ring := &fakeRing{getErr: keyring.ErrKeyNotFound}
	k := newTestKeyringStore(ring, time.Second)
	if err := k.Delete(t.Context(), "gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete(missing) on secret-service = %v, want ErrNotFound", err)
	}
}

package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fsnotify/fsnotify"
)

// The debounce logic, driven by synthetic events on a fake clock.

type checkCall struct {
	at    time.Duration // since the loop started
	force bool
}

type fakeLoop struct {
	events chan fsnotify.Event
	errors chan error
	reload chan chan error
	checks chan checkCall
}

// startFakeLoop runs a watchLoop with a 100 ms debounce over channels the
// test feeds; call it inside a synctest bubble.
func startFakeLoop(t *testing.T) *fakeLoop {
	f := &fakeLoop{
		events: make(chan fsnotify.Event),
		errors: make(chan error),
		reload: make(chan chan error),
		checks: make(chan checkCall, 100),
	}
	start := time.Now()
	l := &watchLoop{
		path:     "/cfg/config.toml",
		dir:      "/cfg",
		watched:  "/cfg",
		debounce: newDebouncer(100 * time.Millisecond),
		events:   f.events,
		errors:   f.errors,
		reload:   f.reload,
		log:      slog.New(slog.DiscardHandler),
		check: func(force bool) error {
			f.checks <- checkCall{time.Since(start), force}
			return nil
		},
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { l.run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

func (f *fakeLoop) send(name string, op fsnotify.Op) { f.events <- fsnotify.Event{Name: name, Op: op} }

// drain returns the checks made so far; every goroutine of the bubble must
// be blocked (synctest.Wait) first.
func (f *fakeLoop) drain(t *testing.T) []checkCall {
	synctest.Wait()
	var got []checkCall
	for {
		select {
		case c := <-f.checks:
			got = append(got, c)
		default:
			return got
		}
	}
}

func wantChecks(t *testing.T, got []checkCall, want ...checkCall) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("checks: got %v, want %v", got, want)
	}
}

func TestDebounceCoalescesABurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := startFakeLoop(t)
		// An in-place save: truncate, write, and a few more writes 30 ms apart.
		for range 5 {
			f.send("/cfg/config.toml", fsnotify.Write)
			time.Sleep(30 * time.Millisecond)
		}
		time.Sleep(time.Second)
		// Last event at 120 ms: one re-read 100 ms later.
		wantChecks(t, f.drain(t), checkCall{at: 220 * time.Millisecond})
	})
}

func TestDebounceEditorRenameIsOneCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := startFakeLoop(t)
		// vim: the config is renamed to a backup, a new file created and written.
		f.send("/cfg/config.toml", fsnotify.Rename)
		time.Sleep(2 * time.Millisecond)
		f.send("/cfg/config.toml", fsnotify.Create)
		f.send("/cfg/config.toml", fsnotify.Write)
		time.Sleep(time.Second)
		wantChecks(t, f.drain(t), checkCall{at: 102 * time.Millisecond})

		// Removed later: one more check.
		f.send("/cfg/config.toml", fsnotify.Remove)
		time.Sleep(time.Second)
		wantChecks(t, f.drain(t), checkCall{at: 1102 * time.Millisecond})
	})
}

func TestDebounceIgnoresChmodAndOtherFiles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := startFakeLoop(t)
		f.send("/cfg/config.toml", fsnotify.Chmod)
		f.send("/cfg/config.toml.swp", fsnotify.Create)
		f.send("/cfg/other.toml", fsnotify.Write)
		f.send("/cfg/sub/config.toml", fsnotify.Write)
		f.send("/elsewhere/config.toml", fsnotify.Write)
		time.Sleep(time.Second)
		wantChecks(t, f.drain(t))
		// The same path, written unclean, counts.
		f.send("/cfg/./config.toml", fsnotify.Write)
		time.Sleep(time.Second)
		wantChecks(t, f.drain(t), checkCall{at: 1100 * time.Millisecond})
	})
}

func TestDebounceBoundsTheDelayUnderAStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := startFakeLoop(t)
		// A write every 30 ms for 2.5 s never leaves 100 ms of quiet; the
		// file is still re-read at least every 10 × 100 ms.
		for range 84 { // events at 0, 30, …, 2490 ms
			f.send("/cfg/config.toml", fsnotify.Write)
			time.Sleep(30 * time.Millisecond)
		}
		time.Sleep(time.Second)
		wantChecks(t, f.drain(t),
			checkCall{at: 1000 * time.Millisecond}, // first burst began at 0
			checkCall{at: 2020 * time.Millisecond}, // the next began at 1020
			checkCall{at: 2590 * time.Millisecond}, // quiet after the last event at 2490
		)
	})
}

func TestDebounceReloadReplacesPendingCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := startFakeLoop(t)
		f.send("/cfg/config.toml", fsnotify.Write)
		time.Sleep(50 * time.Millisecond)
		reply := make(chan error, 1)
		f.reload <- reply
		if err := <-reply; err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		wantChecks(t, f.drain(t), checkCall{at: 50 * time.Millisecond, force: true})
	})
}

func TestDebounceOverflowRereads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := startFakeLoop(t)
		f.errors <- fsnotify.ErrEventOverflow
		f.errors <- errors.New("some other watch error") // logged only
		time.Sleep(time.Second)
		wantChecks(t, f.drain(t), checkCall{at: 100 * time.Millisecond})
	})
}

// The watcher on a real file system, with real fsnotify events.

const waitFor = 10 * time.Second

type watchRecorder struct {
	applied chan *Settings
	errs    chan error
}

func startWatch(t *testing.T, path string, opts WatchOptions) (*SettingsWatcher, *watchRecorder, context.CancelFunc) {
	t.Helper()
	if opts.Debounce == 0 {
		opts.Debounce = 20 * time.Millisecond
	}
	rec := &watchRecorder{applied: make(chan *Settings, 32), errs: make(chan error, 32)}
	ctx, cancel := context.WithCancel(t.Context())
	w, err := WatchSettings(ctx, path, opts,
		func(s *Settings) { rec.applied <- s },
		func(err error) { rec.errs <- err })
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-w.Done() })
	return w, rec, cancel
}

// next waits for the next apply; an error instead fails the test.
func (r *watchRecorder) next(t *testing.T) *Settings {
	t.Helper()
	select {
	case s := <-r.applied:
		return s
	case err := <-r.errs:
		t.Fatalf("want an apply, got error %v", err)
	case <-time.After(waitFor):
		t.Fatal("no apply within the deadline")
	}
	return nil
}

// nextError waits for the next onError; an apply instead fails the test.
func (r *watchRecorder) nextError(t *testing.T) error {
	t.Helper()
	select {
	case s := <-r.applied:
		t.Fatalf("want an error, got an apply of %+v", s)
	case err := <-r.errs:
		return err
	case <-time.After(waitFor):
		t.Fatal("no error within the deadline")
	}
	return nil
}

// until waits for an apply of version, skipping the empty settings a
// moment with no file may produce.
func (r *watchRecorder) until(t *testing.T, version string) {
	t.Helper()
	for {
		s := r.next(t)
		if v := versionOf(s); v == version {
			return
		} else if v != "" {
			t.Fatalf("applied version %q while waiting for %q", v, version)
		}
	}
}

// configV is a valid config whose only server's URL names the version.
func configV(v string) string {
	return fmt.Sprintf("# version %s\n[servers.s]\nurl = \"https://%s.example/mcp\"\n", v, v)
}

func versionOf(s *Settings) string {
	if s == nil || len(s.Servers) == 0 {
		return ""
	}
	var v string
	fmt.Sscanf(s.Servers["s"].URL, "https://%s", &v)
	return v[:len(v)-len(".example/mcp")]
}

func expectVersion(t *testing.T, s *Settings, path, v string) {
	t.Helper()
	if got := versionOf(s); got != v {
		t.Fatalf("applied version %q, want %q (%+v)", got, v, s)
	}
	if s.Path != path {
		t.Errorf("applied settings have Path %q, want %q", s.Path, path)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestWatchSettingsAppliesEdits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	write(t, path, configV("v1"))
	_, rec, _ := startWatch(t, path, WatchOptions{})

	write(t, path, configV("v2")) // os.WriteFile: O_TRUNC, then write
	expectVersion(t, rec.next(t), path, "v2")

	// Truncate and write as two steps (two WRITE events): the debounce reads
	// once, after both, so the empty file in between is never applied.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(configV("v3")), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	expectVersion(t, rec.next(t), path, "v3")

}

func TestWatchSettingsSameSettingsNotApplied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	write(t, path, configV("v1"))
	logs := make(chan string, 100)
	_, rec, _ := startWatch(t, path, WatchOptions{Logger: slog.New(chanHandler(logs))})

	// Saving the same settings again (only a comment changed) is read and
	// found unchanged; nothing is applied.
	write(t, path, configV("v1")+"# a comment\n")
	waitLog(t, logs, "config unchanged")
	select {
	case s := <-rec.applied:
		t.Fatalf("unchanged settings applied: %+v", s)
	case err := <-rec.errs:
		t.Fatal(err)
	default:
	}
	write(t, path, configV("v2"))
	expectVersion(t, rec.next(t), path, "v2")
}

// chanHandler sends each log message to a channel, dropping what does not fit.
type chanHandler chan string

func (h chanHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h chanHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h <- r.Message:
	default: // never block the watcher
	}
	return nil
}
func (h chanHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h chanHandler) WithGroup(string) slog.Handler      { return h }

func waitLog(t *testing.T, logs <-chan string, msg string) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case m := <-logs:
			if m == msg {
				return
			}
		case <-deadline:
			t.Fatalf("no %q log within the deadline", msg)
		}
	}
}

func TestWatchSettingsInvalidEditKeepsOld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	write(t, path, configV("v1"))
	_, rec, _ := startWatch(t, path, WatchOptions{})

	write(t, path, "[servers.s]\nurl = \"ftp://x\"\n")
	err := rec.nextError(t)
	var se *SettingsError
	if !errors.As(err, &se) {
		t.Fatalf("onError got %T %v, want a *SettingsError", err, err)
	}
	if want := (SettingsError{Path: path, Line: 2, Column: 7, Msg: `servers.s.url: expected an absolute http(s) URL, got "ftp://x"`}); *se != want {
		t.Errorf("got %+v, want %+v", *se, want)
	}

	// Back to the settings in force: applied again, so the caller learns the
	// error is gone.
	write(t, path, configV("v1"))
	expectVersion(t, rec.next(t), path, "v1")

	write(t, path, "backend = \n")
	if err := rec.nextError(t); !errors.As(err, &se) || se.Line != 1 {
		t.Errorf("syntax error: got %v", err)
	}
	write(t, path, configV("v2"))
	expectVersion(t, rec.next(t), path, "v2")
}

func TestWatchSettingsEditorSaves(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	write(t, path, configV("v1"))
	_, rec, _ := startWatch(t, path, WatchOptions{})

	// VS Code, atomic writers: a temporary file renamed over the config.
	tmp := filepath.Join(dir, ".config.toml.tmp")
	write(t, tmp, configV("v2"))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	expectVersion(t, rec.next(t), path, "v2")

	// vim with backups: the config is renamed away, rewritten, the backup
	// removed.
	backup := path + "~"
	if err := os.Rename(path, backup); err != nil {
		t.Fatal(err)
	}
	write(t, path, configV("v3"))
	if err := os.Remove(backup); err != nil {
		t.Fatal(err)
	}
	rec.until(t, "v3")

	// Repeated saves keep working after the renames: the watch is on the
	// directory, not on the file that was replaced.
	for _, v := range []string{"v4", "v5", "v6"} {
		write(t, tmp, configV(v))
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		expectVersion(t, rec.next(t), path, v)
	}
}

func TestWatchSettingsRemovedAndRecreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	write(t, path, configV("v1"))
	_, rec, _ := startWatch(t, path, WatchOptions{})

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	s := rec.next(t)
	if !reflect.DeepEqual(s, &Settings{Path: path}) {
		t.Fatalf("removed config: applied %+v, want the empty settings", s)
	}
	write(t, path, configV("v2"))
	expectVersion(t, rec.next(t), path, "v2")
}

func TestWatchSettingsMissingDirectory(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b")
	path := filepath.Join(dir, "config.toml")
	_, rec, _ := startWatch(t, path, WatchOptions{})

	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, path, configV("v1"))
	rec.until(t, "v1")

	// Once the directory exists, it is watched directly.
	write(t, path, configV("v2"))
	expectVersion(t, rec.next(t), path, "v2")
}

func TestWatchSettingsDirectoryReplaced(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "mcpkey")
	path := filepath.Join(dir, "config.toml")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, path, configV("v1"))
	_, rec, _ := startWatch(t, path, WatchOptions{})

	// Swapped for a new directory by rename (as dotfile managers do).
	next := filepath.Join(root, "mcpkey.new")
	if err := os.Mkdir(next, 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(next, "config.toml"), configV("v2"))
	if err := os.Rename(dir, filepath.Join(root, "mcpkey.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, dir); err != nil {
		t.Fatal(err)
	}
	rec.until(t, "v2")
	write(t, path, configV("v3"))
	rec.until(t, "v3")

	// Deleted and created again.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, path, configV("v4"))
	rec.until(t, "v4")
	write(t, path, configV("v5"))
	rec.until(t, "v5")
}

func TestWatchSettingsReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	write(t, path, configV("v1"))
	// A debounce longer than the test: only Reload reads the file.
	w, rec, cancel := startWatch(t, path, WatchOptions{Debounce: time.Hour})

	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	expectVersion(t, rec.next(t), path, "v1") // applied even though unchanged

	write(t, path, "[servers.s]\nurl = 1\n")
	err := w.Reload()
	var se *SettingsError
	if !errors.As(err, &se) || se.Line != 2 {
		t.Fatalf("Reload of an invalid file: got %v, want a *SettingsError on line 2", err)
	}
	if got := rec.nextError(t); got != err {
		t.Errorf("onError got %v, want the error Reload returned", got)
	}

	write(t, path, configV("v2"))
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	expectVersion(t, rec.next(t), path, "v2")

	cancel()
	select {
	case <-w.Done():
	case <-time.After(waitFor):
		t.Fatal("watcher did not stop")
	}
	if err := w.Reload(); !errors.Is(err, errWatcherStopped) {
		t.Errorf("Reload after stop: got %v", err)
	}
}

func TestWatchSettingsCurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	write(t, path, configV("v1"))
	cur, err := LoadSettings(path)
	if err != nil {
		t.Fatal(err)
	}
	// Changed between the caller's load and the start of the watch: caught.
	write(t, path, configV("v2"))
	_, rec, _ := startWatch(t, path, WatchOptions{Current: cur})
	expectVersion(t, rec.next(t), path, "v2")

	// Current equal to the file: nothing applied until a real change.
	path2 := filepath.Join(t.TempDir(), "config.toml")
	write(t, path2, configV("v1"))
	cur, err = LoadSettings(path2)
	if err != nil {
		t.Fatal(err)
	}
	_, rec2, _ := startWatch(t, path2, WatchOptions{Current: cur})
	write(t, path2, configV("v3"))
	expectVersion(t, rec2.next(t), path2, "v3")
}

func TestWatchSettingsArguments(t *testing.T) {
	if _, err := WatchSettings(t.Context(), "config.toml", WatchOptions{}, nil, nil); err == nil {
		t.Error("nil apply accepted")
	}
}
